//! Wall time per SRB of vstor.sys against the C peer, in the same process,
//! both hot in cache (the same LBA and the same buffers every time).
//!
//! Both adapters are started in this process and called the same way
//! ([`Bench::start_io`]): each round times a batch of SRBs on vstor and
//! then the same batch on the peer, so a pair ran under the same load from
//! whatever else the machine runs (a sibling hyperthread's load can halve
//! both); the ratio is the median of the rounds' ratios, and the times
//! shown are the fastest rounds.

use std::time::Instant;

use crate::driver::Bench;
use crate::kinds::Kind;

/// Rounds of each measurement.
pub const ROUNDS: usize = 15;
/// Bytes each round moves, so small transfers run many times.
const ROUND_BYTES: usize = 64 << 20;

/// The outcome for one kind.
#[derive(Clone, Copy, Debug)]
pub struct Wall {
    /// Nanoseconds per SRB on vstor.sys, `HwStartIo` entry to return
    /// (fastest round).
    pub vstor_ns: f64,
    /// The same on the C peer (with its lock).
    pub peer_ns: f64,
    /// Median over the rounds of vstor time / peer time.
    pub ratio: f64,
}

fn iterations(bytes: usize) -> usize {
    (ROUND_BYTES / bytes.max(4096)).max(2000)
}

/// Times `kind` on `vstor` and `peer`, interleaving their rounds.
///
/// # Panics
///
/// When a request does not succeed on either driver.
#[must_use]
pub fn measure(vstor: &Bench, peer: &Bench, kind: Kind) -> Wall {
    let count = iterations(kind.copy_bytes());
    // One request for both, so both copy to and from the same buffer: how
    // fast `rep movsb` runs depends on the buffer's alignment, and two
    // allocations need not share it.
    let mut request = kind.request();
    let mut best = [f64::INFINITY; 2];
    let mut ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let mut round = [0.0; 2];
        for (index, (bench, driver)) in [(vstor, "vstor.sys"), (peer, "the C peer")]
            .into_iter()
            .enumerate()
        {
            let begun = Instant::now();
            for _ in 0..count {
                bench.start_io(&mut request);
            }
            round[index] = per_op(begun, count);
            best[index] = best[index].min(round[index]);
            assert_eq!(
                request.status(),
                (0x01, 0x00),
                "{} did not succeed on {driver}",
                kind.label()
            );
        }
        ratios.push(round[0] / round[1]);
    }
    Wall {
        vstor_ns: best[0],
        peer_ns: best[1],
        ratio: median(&mut ratios).unwrap_or(f64::NAN),
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
