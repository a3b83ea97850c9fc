//! Wall time per SRB against glibc `memcpy` of the same size, in the same
//! process, both hot in cache (the same LBA and the same buffers every time).

use std::hint::black_box;
use std::time::Instant;

use crate::driver::Bench;
use crate::kinds::Kind;

/// Rounds of each measurement; the fastest round counts (the least
/// disturbed by the other process on the machine).
const ROUNDS: usize = 9;
/// Bytes each round moves, so small transfers run many times.
const ROUND_BYTES: usize = 256 << 20;

/// The outcome for one kind.
#[derive(Clone, Copy, Debug)]
pub struct Wall {
    /// Nanoseconds per SRB, `HwStartIo` entry to return.
    pub srb_ns: f64,
    /// Nanoseconds per glibc `memcpy` of the SRB's transfer size (`None`
    /// for requests without data on the medium).
    pub memcpy_ns: Option<f64>,
}

impl Wall {
    /// `srb_ns / memcpy_ns`.
    #[must_use]
    pub fn ratio(&self) -> Option<f64> {
        self.memcpy_ns.map(|memcpy| self.srb_ns / memcpy)
    }
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
    let mut source = vec![0x5A_u8; bytes];
    let mut target = vec![0_u8; bytes];
    let mut srb_best = f64::INFINITY;
    let mut memcpy_best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let begun = Instant::now();
        for _ in 0..count {
            bench.start_io(&mut request);
        }
        srb_best = srb_best.min(per_op(begun, count));
        if bytes > 0 {
            let begun = Instant::now();
            for _ in 0..count {
                black_box(&mut target).copy_from_slice(black_box(&source));
            }
            memcpy_best = memcpy_best.min(per_op(begun, count));
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
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "nanosecond counts and iteration counts stay far below 2^52"
)]
fn per_op(begun: Instant, count: usize) -> f64 {
    begun.elapsed().as_nanos() as f64 / count as f64
}
