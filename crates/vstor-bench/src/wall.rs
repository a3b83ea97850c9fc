//! Wall time per SRB against glibc `memcpy` of the same size, in the same
//! process, both hot in cache (the same LBA and the same buffers every time).
//!
//! The baseline copies between buffers placed at the same offsets within
//! their pages as the driver's (the disk chunk and the SRB's data buffer),
//! in the same direction, so both face the same alignment and the same
//! 4 KiB address aliasing between source and target.

use std::hint::black_box;
use std::time::Instant;

use crate::driver::{Bench, PAGE_BYTES};
use crate::kinds::Kind;

/// Rounds of each measurement. Each round times the SRBs and then the
/// memcpy baseline right after, so a pair ran under the same load from
/// whatever else the machine runs (a sibling hyperthread's load can halve
/// both); the ratio is the median of the rounds' ratios, and the times shown
/// are the fastest rounds.
const ROUNDS: usize = 15;
/// Bytes each round moves, so small transfers run many times.
const ROUND_BYTES: usize = 64 << 20;

/// The outcome for one kind.
#[derive(Clone, Copy, Debug)]
pub struct Wall {
    /// Nanoseconds per SRB, `HwStartIo` entry to return.
    pub srb_ns: f64,
    /// Nanoseconds per glibc `memcpy` of the SRB's transfer size (`None`
    /// for requests without data on the medium).
    pub memcpy_ns: Option<f64>,
    /// Median over the rounds of SRB time / memcpy time.
    pub median_ratio: Option<f64>,
}

impl Wall {
    /// Wall time per SRB over memcpy time (median of the rounds' ratios).
    #[must_use]
    pub const fn ratio(&self) -> Option<f64> {
        self.median_ratio
    }
}

/// The index in `buffer` whose address lies `page_offset` bytes into a page.
fn place(buffer: &[u8], page_offset: usize) -> usize {
    let address = buffer.as_ptr() as usize;
    (page_offset + PAGE_BYTES - address % PAGE_BYTES) % PAGE_BYTES
}

fn iterations(bytes: usize) -> usize {
    (ROUND_BYTES / bytes.max(4096)).max(2000)
}

/// Times `kind` on `bench`, interleaving SRB rounds with `memcpy` rounds.
#[must_use]
pub fn measure(bench: &Bench, kind: Kind) -> Wall {
    let bytes = kind.copy_bytes();
    let count = iterations(bytes);
    let mut request = kind.request();
    let mut medium_buffer = vec![0x5A_u8; bytes + 2 * PAGE_BYTES];
    // Both buffers hold data on every page, like the driver's: a zeroed
    // vector's untouched pages all map the kernel's one shared zero page, so
    // a copy out of them reads one cache-hot page over and over.
    let mut request_buffer = vec![0xA5_u8; bytes + 2 * PAGE_BYTES];
    let medium_at = place(&medium_buffer, bench.medium_page_offset().unwrap_or(0));
    let request_at = place(&request_buffer, request.data_page_offset());
    let medium = &mut medium_buffer[medium_at..medium_at + bytes];
    let request_data = &mut request_buffer[request_at..request_at + bytes];
    let (source, target) = if matches!(kind, Kind::Write(_)) {
        (request_data, medium)
    } else {
        (medium, request_data)
    };
    let mut srb_best = f64::INFINITY;
    let mut memcpy_best = f64::INFINITY;
    let mut ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let begun = Instant::now();
        for _ in 0..count {
            bench.start_io(&mut request);
        }
        let srb_ns = per_op(begun, count);
        srb_best = srb_best.min(srb_ns);
        if bytes > 0 {
            let begun = Instant::now();
            for _ in 0..count {
                black_box(&mut *target).copy_from_slice(black_box(&*source));
            }
            let memcpy_ns = per_op(begun, count);
            memcpy_best = memcpy_best.min(memcpy_ns);
            ratios.push(srb_ns / memcpy_ns);
            source[0] = target[bytes - 1];
        }
    }
    assert_eq!(
        request.status(),
        (0x01, 0x00),
        "{} did not succeed",
        kind.label()
    );
    Wall {
        srb_ns: srb_best,
        memcpy_ns: (bytes > 0).then_some(memcpy_best),
        median_ratio: median(&mut ratios),
    }
}

/// Nanoseconds per call of a stub `HwStartIo` that only completes the SRB
/// (the fastest of [`ROUNDS`] rounds): the floor of the measurement path
/// under every SRB time.
#[must_use]
pub fn floor(bench: &Bench) -> f64 {
    let count = iterations(0);
    let mut request = Kind::TestUnitReady.request();
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let begun = Instant::now();
        for _ in 0..count {
            bench.start_stub(&mut request);
        }
        best = best.min(per_op(begun, count));
    }
    best
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[expect(
    clippy::cast_precision_loss,
    reason = "nanosecond counts and iteration counts stay far below 2^52"
)]
fn per_op(begun: Instant, count: usize) -> f64 {
    begun.elapsed().as_nanos() as f64 / count as f64
}
