//! The medium of one disk: RAM in fixed-size chunks.
//!
//! # Why this is free of data races
//!
//! Storport calls `HwStartIo` on several processors at once with no lock
//! held, so two requests may touch the same bytes at the same time. Each
//! chunk is a [`SharedBytes`]: plain memory copied with `memcpy` under the
//! chunk's reader-writer kernel spin lock (an `EX_SPIN_LOCK`: shared to
//! read, exclusive to write, raising the IRQL to `DISPATCH_LEVEL` for the
//! copy), so every conflicting pair of copies is ordered and there is no
//! data race in Rust's sense; the `unsafe` copy and its argument live in
//! `storport::shared_bytes`. A write or zeroing spanning two chunks takes
//! their locks one after the other, never together, so two overlapping
//! concurrent writes may interleave at chunk granularity, which SCSI permits
//! (it orders nothing between concurrent commands). A read within two
//! chunks and an atomic step ([`BlockStore::atomically`]) hold both chunks'
//! locks together, so a read sees a COMPARE AND WRITE across the boundary
//! whole (see `RamDisk::span` for the lock order).
//!
//! Chunks (1 MiB each) keep every pool allocation modest: a 64 GiB disk is
//! 65536 allocations of 1 MiB rather than one block the pool may not have.
//!
//! The disk's unit lock ([`BlockStore::with_unit_lock`], persistent
//! reservations) is an ordinary kernel spin lock: its holds are rare and
//! short, and exclusive.

use core::ops::Range;

use storport::{SharedBytes, SpinLock, UniqueWords};

use crate::scsi::{BlockStore, LentBytes, MAX_ATOMIC_BYTES, Outcome, SenseData};

/// Bytes per chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
// An atomic step crosses at most one chunk boundary (see `RamDisk::atomically`).
const _: () = assert!(MAX_ATOMIC_BYTES as usize <= CHUNK_BYTES);
/// 64-bit words per chunk.
pub const CHUNK_WORDS: usize = CHUNK_BYTES / WORD;
const WORD: usize = size_of::<u64>();

/// A RAM disk over chunks of type `C` (pool memory in the driver, boxed
/// slices in tests).
pub struct RamDisk<C> {
    chunks: alloc::vec::Vec<SharedBytes<C>>,
    size_bytes: u64,
    unit: SpinLock<()>,
}

impl<C: UniqueWords> RamDisk<C> {
    /// Builds a disk of `size_bytes` (rounded up to whole words), allocating
    /// each chunk with `allocate(words)`; chunks come back zeroed.
    ///
    /// # Errors
    ///
    /// The first error `allocate` returns, or `None` when the chunk table
    /// itself cannot be allocated; the chunks allocated so far are dropped
    /// (freed) before returning.
    pub fn new<E>(
        size_bytes: u64,
        mut allocate: impl FnMut(usize) -> Result<C, E>,
    ) -> Result<Self, Option<E>> {
        let total_words = usize::try_from(size_bytes.div_ceil(WORD as u64)).map_err(|_| None)?;
        let chunk_count = total_words.div_ceil(CHUNK_WORDS);
        let mut chunks = alloc::vec::Vec::new();
        chunks.try_reserve_exact(chunk_count).map_err(|_| None)?;
        let mut remaining = total_words;
        while remaining > 0 {
            let words = remaining.min(CHUNK_WORDS);
            let chunk = allocate(words).map_err(Some)?;
            if chunk.len() < words {
                return Err(None);
            }
            chunks.push(SharedBytes::new(chunk));
            remaining -= words;
        }
        Ok(Self {
            chunks,
            size_bytes,
            unit: SpinLock::new(()),
        })
    }

    /// The disk's size in bytes.
    #[must_use]
    pub const fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Visits the chunks covering `offset..offset + len` in order, with the
    /// offset inside each chunk and the range of the caller's buffer that
    /// lies in it. Stops at the end of the disk.
    fn for_each_piece(
        &self,
        offset: u64,
        len: usize,
        mut f: impl FnMut(&SharedBytes<C>, usize, Range<usize>),
    ) {
        let mut done = 0_usize;
        while done < len {
            let Some(at) = offset
                .checked_add(done as u64)
                .and_then(|at| usize::try_from(at).ok())
            else {
                return;
            };
            let Some(chunk) = self.chunks.get(at / CHUNK_BYTES) else {
                return;
            };
            let within = at % CHUNK_BYTES;
            let count = chunk.len_bytes().saturating_sub(within).min(len - done);
            if count == 0 {
                return;
            }
            f(chunk, within, done..done + count);
            done += count;
        }
    }
}

impl<C: UniqueWords> RamDisk<C> {
    /// [`BlockStore::read`] of a range that does not lie in one chunk: out of line, so
    /// the common read keeps its registers.
    #[inline(never)]
    fn read_across(&self, byte_offset: u64, out: &mut [u8]) {
        if let Some(Span::Two(first, within, head, second)) = self.span(byte_offset, out.len()) {
            let (to_first, to_second) = out.split_at_mut(head.min(out.len()));
            first.with_shared(within, to_first.len(), |a| {
                second.with_shared(0, to_second.len(), |b| {
                    to_first.copy_from_slice(a);
                    to_second.copy_from_slice(b);
                })
            });
            return;
        }
        self.for_each_piece(byte_offset, out.len(), |chunk, within, range| {
            if let Some(to) = out.get_mut(range) {
                chunk.read(within, to);
            }
        });
    }
}

impl<C: UniqueWords> RamDisk<C> {
    /// The chunk byte `byte_offset` lies in, and the offset inside it.
    #[inline]
    fn chunk_at(&self, byte_offset: u64) -> Option<(&SharedBytes<C>, usize)> {
        let at = usize::try_from(byte_offset).ok()?;
        Some((self.chunks.get(at / CHUNK_BYTES)?, at % CHUNK_BYTES))
    }
}

/// Where a range lies: in one chunk (at an offset), or in two neighbours (from an offset
/// in the first, that many bytes in it, the rest at the start of the second).
enum Span<'a, C> {
    One(&'a SharedBytes<C>, usize),
    Two(&'a SharedBytes<C>, usize, usize, &'a SharedBytes<C>),
}

impl<C: UniqueWords> RamDisk<C> {
    /// The chunks `byte_offset..byte_offset + len` lies in, when it lies wholly inside
    /// one chunk or two neighbours.
    ///
    /// Lock order: an access that holds two chunk locks at once takes the first chunk's
    /// before the second's, and every other access holds one chunk lock at a time, so
    /// holds cannot wait on each other in a cycle.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): at opt-level s the call stays out of line otherwise, and READ(10) / WRITE(10) pay for its frame"
    )]
    #[inline(always)]
    fn span(&self, byte_offset: u64, len: usize) -> Option<Span<'_, C>> {
        let at = usize::try_from(byte_offset).ok()?;
        let (index, within) = (at / CHUNK_BYTES, at % CHUNK_BYTES);
        let first = self.chunks.get(index)?;
        let head = len.min(first.len_bytes().saturating_sub(within));
        if head == len {
            return (within + len <= first.len_bytes()).then_some(Span::One(first, within));
        }
        let second = self.chunks.get(index + 1)?;
        (len - head <= second.len_bytes()).then_some(Span::Two(first, within, head, second))
    }
}

impl<C: UniqueWords> BlockStore for RamDisk<C> {
    fn with_unit_lock(
        &self,
        f: &mut dyn FnMut() -> Result<Outcome, SenseData>,
    ) -> Result<Outcome, SenseData> {
        let _held = self.unit.lock();
        f()
    }

    /// Holds the lock of every chunk the range touches exclusively: at most two, since a
    /// range of at most [`MAX_ATOMIC_BYTES`] (one chunk's size) crosses at most one chunk
    /// boundary. See `RamDisk::span` for the lock order.
    fn atomically(
        &self,
        byte_offset: u64,
        len: usize,
        f: &mut dyn FnMut(&mut [u8], &mut [u8]),
    ) -> bool {
        match self.span(byte_offset, len) {
            Some(Span::One(chunk, within)) => chunk
                .with_exclusive(within, len, |a| f(a, &mut []))
                .is_some(),
            Some(Span::Two(first, within, head, second)) => first
                .with_exclusive(within, head, |a| {
                    second.with_exclusive(0, len - head, |b| f(a, b)).is_some()
                })
                .unwrap_or(false),
            None => false,
        }
    }

    /// A read within one or two chunks (every read the disk makes: one transfer is at most
    /// one chunk's size) holds their locks shared together, so it sees an atomic step
    /// across the boundary (COMPARE AND WRITE, [`BlockStore::atomically`]) whole or not
    /// at all; see `RamDisk::span` for the lock order. Anything else is read chunk by
    /// chunk.
    #[expect(
        clippy::inline_always,
        reason = "measured (callgrind): out of line, READ(10) of 4 KiB costs 20 more instructions \
                  per SRB, 4506 against 4486"
    )]
    #[inline(always)]
    fn read(&self, byte_offset: u64, out: &mut [u8]) {
        // Within one chunk: its own range check decides (a range that runs past the chunk is
        // refused and copies nothing).
        if let Some((chunk, within)) = self.chunk_at(byte_offset)
            && chunk.read(within, out)
        {
            return;
        }
        self.read_across(byte_offset, out);
    }

    /// A write within one chunk (most writes) copies under that chunk's lock; anything
    /// else is written chunk by chunk, one lock at a time.
    fn write(&self, byte_offset: u64, data: &[u8]) {
        if let Some(Span::One(chunk, within)) = self.span(byte_offset, data.len()) {
            chunk.write(within, data);
            return;
        }
        self.for_each_piece(byte_offset, data.len(), |chunk, within, range| {
            if let Some(from) = data.get(range) {
                chunk.write(within, from);
            }
        });
    }

    /// Copies the lent bytes straight into the chunks, under each chunk's lock: one copy, as
    /// [`BlockStore::write`] makes from a slice. A range within one chunk (most writes) goes
    /// straight to it, without the walk over the pieces.
    #[expect(
        clippy::inline_always,
        reason = "measured (vstor-bench, callgrind): out of line at opt-level s, WRITE(10) of 4 KiB \
                  pays for a second frame of eight saved registers"
    )]
    #[inline(always)]
    fn write_lent(&self, byte_offset: u64, data: LentBytes<'_>) {
        if let Some((chunk, within)) = self.chunk_at(byte_offset)
            && chunk.write_lent(within, data)
        {
            return;
        }
        self.for_each_piece(byte_offset, data.len(), |chunk, within, range| {
            chunk.with_exclusive(within, range.len(), |to| {
                // The piece lies inside `data` (`for_each_piece` covers `0..data.len()`).
                let _ = data.copy_to(range.start, to);
            });
        });
    }

    fn zero(&self, byte_offset: u64, len: u64) {
        let mut offset = byte_offset;
        let end = byte_offset.saturating_add(len);
        // At most a chunk per step, so `len` fits a usize on any target.
        while offset < end {
            let step = usize::try_from(end - offset)
                .unwrap_or(usize::MAX)
                .min(CHUNK_BYTES);
            self.for_each_piece(offset, step, |chunk, within, range| {
                chunk.zero(within, range.len());
            });
            offset += step as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::srb_status;
    use core::sync::atomic::{AtomicU64, Ordering};
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;
    use storport_emu::port::host::{DISPATCH_LEVEL, Kernel, PASSIVE_LEVEL, irql};

    fn disk(size_bytes: u64) -> RamDisk<Box<[AtomicU64]>> {
        RamDisk::new(size_bytes, |words| {
            Ok::<_, ()>((0..words).map(|_| AtomicU64::new(0)).collect())
        })
        .expect("allocation")
    }

    /// Runs `f` on one emulated processor at `PASSIVE_LEVEL` (the lower end
    /// of start-io's range, where every lock must raise), and checks that
    /// storemu saw every lock taken and released cleanly.
    fn on_processor(f: impl FnOnce()) {
        let kernel = Kernel::new();
        kernel.run(PASSIVE_LEVEL, f);
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn new_disk_reads_zeros() {
        on_processor(|| {
            let disk = disk(4096);
            let mut out = vec![0xAA_u8; 4096];
            disk.read(0, &mut out);
            assert!(out.iter().all(|&byte| byte == 0));
        });
    }

    #[test]
    fn atomically_spans_a_chunk_boundary_and_refuses_ranges_outside() {
        on_processor(|| {
            let disk = disk(2 * CHUNK_BYTES as u64);
            let start = CHUNK_BYTES as u64 - 3;
            disk.write(start, &[1, 2, 3, 4, 5]);
            let mut seen = (Vec::new(), Vec::new());
            assert!(disk.atomically(start, 5, &mut |a, b| {
                seen = (a.to_vec(), b.to_vec());
                a.fill(9);
                b.fill(8);
            }));
            assert_eq!(seen, (vec![1, 2, 3], vec![4, 5]));
            let mut out = [0_u8; 7];
            disk.read(start - 1, &mut out);
            assert_eq!(out, [0, 9, 9, 9, 8, 8, 0]);

            let mut in_one = (0, 1);
            assert!(disk.atomically(16, 4, &mut |a, b| in_one = (a.len(), b.len())));
            assert_eq!(
                in_one,
                (4, 0),
                "a range inside one chunk comes as one slice"
            );

            let mut called = false;
            let end = 2 * CHUNK_BYTES as u64;
            assert!(!disk.atomically(end - 2, 4, &mut |_, _| called = true));
            assert!(!disk.atomically(end, 1, &mut |_, _| called = true));
            assert!(!disk.atomically(start, CHUNK_BYTES + 4, &mut |_, _| called = true));
            assert!(!called, "a refused range must not run the closure");
        });
    }

    #[test]
    fn write_then_read_across_a_chunk_boundary() {
        on_processor(|| {
            let disk = disk(3 * CHUNK_BYTES as u64);
            let start = CHUNK_BYTES as u64 - 1024;
            let data: Vec<u8> = (0..4096_u32).map(|i| (i % 251) as u8).collect();
            disk.write(start, &data);
            let mut out = vec![0_u8; 4096];
            disk.read(start, &mut out);
            assert_eq!(out, data);
            let mut before = [0xFF_u8; 8];
            disk.read(start - 8, &mut before);
            assert_eq!(before, [0; 8], "bytes before the write are untouched");
        });
    }

    #[test]
    fn lent_bytes_are_copied_straight_in_across_a_chunk_boundary() {
        on_processor(|| {
            let disk = disk(3 * CHUNK_BYTES as u64);
            let start = CHUNK_BYTES as u64 - 1000;
            let data: Vec<u8> = (0..3000_u32).map(|i| (i % 241) as u8 ^ 0x5A).collect();
            disk.write_lent(start, LentBytes::from(&data[..]));
            let mut out = vec![0_u8; 3008];
            disk.read(start, &mut out);
            assert_eq!(out[..3000], data[..]);
            assert_eq!(out[3000..], [0; 8], "bytes after the write are untouched");
        });
    }

    #[test]
    fn unaligned_writes_merge_within_a_word() {
        on_processor(|| {
            let disk = disk(64);
            disk.write(0, &[1; 16]);
            disk.write(3, &[9, 9]);
            let mut out = [0_u8; 16];
            disk.read(0, &mut out);
            assert_eq!(out, [1, 1, 1, 9, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        });
    }

    #[test]
    fn zero_clears_exactly_the_range() {
        on_processor(|| {
            let disk = disk(2 * CHUNK_BYTES as u64);
            disk.write(0, &vec![7_u8; 2 * CHUNK_BYTES]);
            disk.zero(5, CHUNK_BYTES as u64);
            let mut out = vec![0_u8; 2 * CHUNK_BYTES];
            disk.read(0, &mut out);
            assert_eq!(&out[..5], &[7; 5]);
            assert!(out[5..5 + CHUNK_BYTES].iter().all(|&byte| byte == 0));
            assert!(out[5 + CHUNK_BYTES..].iter().all(|&byte| byte == 7));
        });
    }

    #[test]
    fn access_past_the_end_is_cut_short_without_panicking() {
        on_processor(|| {
            let disk = disk(1024);
            let mut out = [0xEE_u8; 16];
            disk.read(1020, &mut out);
            assert_eq!(&out[..4], &[0; 4]);
            assert_eq!(&out[4..], &[0xEE; 12], "bytes past the end are left alone");
            disk.write(u64::MAX - 3, &[1; 8]);
            disk.zero(u64::MAX - 3, 100);
        });
    }

    #[test]
    fn allocation_failure_is_returned() {
        let mut calls = 0;
        let result: Result<RamDisk<Box<[AtomicU64]>>, _> =
            RamDisk::new(3 * CHUNK_BYTES as u64, |words| {
                calls += 1;
                if calls == 2 {
                    Err("no memory")
                } else {
                    Ok((0..words).map(|_| AtomicU64::new(0)).collect())
                }
            });
        assert_eq!(result.err(), Some(Some("no memory")));
    }

    #[test]
    fn concurrent_writers_to_separate_blocks_do_not_interfere() {
        let kernel = Kernel::new();
        let disk = disk(CHUNK_BYTES as u64);
        std::thread::scope(|scope| {
            for thread in 0..4_u8 {
                let (disk, kernel) = (&disk, &kernel);
                scope.spawn(move || {
                    kernel.run(PASSIVE_LEVEL, || {
                        for round in 0..200_u64 {
                            let offset = (u64::from(thread) * 64 + round % 64) * 512;
                            disk.write(offset, &[thread + 1; 512]);
                        }
                    });
                });
            }
        });
        kernel.run(PASSIVE_LEVEL, || {
            for thread in 0..4_u8 {
                let mut out = [0_u8; 512];
                disk.read(u64::from(thread) * 64 * 512, &mut out);
                assert_eq!(out, [thread + 1; 512]);
            }
        });
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn a_read_across_a_chunk_boundary_sees_an_atomic_step_whole() {
        // Writers fill 16 bytes across the boundary with one value per step;
        // a reader that held the two chunks' locks one after the other could
        // see the halves of two steps.
        let kernel = Kernel::new();
        let disk = disk(2 * CHUNK_BYTES as u64);
        let start = CHUNK_BYTES as u64 - 8;
        std::thread::scope(|scope| {
            for writer in 0..2_u8 {
                let (disk, kernel) = (&disk, &kernel);
                scope.spawn(move || {
                    kernel.run(PASSIVE_LEVEL, || {
                        for step in 0..=u8::MAX {
                            let value = step.wrapping_mul(2).wrapping_add(writer) | 1;
                            assert!(disk.atomically(start, 16, &mut |a, b| {
                                a.fill(value);
                                b.fill(value);
                            }));
                        }
                    });
                });
            }
            for _ in 0..2 {
                scope.spawn(|| {
                    kernel.run(PASSIVE_LEVEL, || {
                        for _ in 0..500 {
                            let mut out = [0_u8; 16];
                            disk.read(start, &mut out);
                            assert!(
                                out.iter().all(|&byte| byte == out[0]),
                                "a torn step: {out:?}"
                            );
                        }
                    });
                });
            }
        });
        assert_eq!(kernel.findings(), Vec::new());
    }

    #[test]
    fn the_unit_lock_raises_the_irql_and_excludes_other_processors() {
        // Each processor adds 1 to a counter as a separate load and store
        // with a yield between: only exclusion keeps every update.
        let kernel = Kernel::new();
        let disk = disk(512);
        let counter = AtomicU64::new(0);
        let seen_irql = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    kernel.run(PASSIVE_LEVEL, || {
                        for _ in 0..100 {
                            let outcome = disk.with_unit_lock(&mut || {
                                seen_irql.fetch_max(u64::from(irql()), Ordering::Relaxed);
                                let n = counter.load(Ordering::Relaxed);
                                std::thread::yield_now();
                                counter.store(n + 1, Ordering::Relaxed);
                                Ok(Outcome::good(0))
                            });
                            assert_eq!(outcome.map(|o| o.srb_status), Ok(srb_status::SUCCESS));
                        }
                        assert_eq!(irql(), PASSIVE_LEVEL, "the IRQL comes back");
                    });
                });
            }
        });
        assert_eq!(counter.load(Ordering::Relaxed), 400);
        assert_eq!(seen_irql.load(Ordering::Relaxed), u64::from(DISPATCH_LEVEL));
        assert_eq!(kernel.findings(), Vec::new());
    }
}
