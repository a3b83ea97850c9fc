//! Where an NBD request's time goes on the serving path (`storemu serve
//! --stage-times`): per connection, a histogram of each stage, summarised in
//! the port's log when the connection ends.
//!
//! - `receive`: from the socket read that brought the request's last bytes
//!   to the request ready to run (header parsed, payload copied);
//! - `port`: the block operation through [`super::backend::Backend`]: the
//!   CDB built, the SRB through the call gate into the miniport, its
//!   completion back and the reply gathered; split into
//!   - `gate`, `driver`, `completion`: as [`crate::port::timing`] measures
//!     them (the port and call gate around `HwStartIo`, the miniport with
//!     the exports it calls, the completed SRB to the result),
//!   - `bridge`: the rest (the CDB and the SRB built, the phase checked,
//!     the reply gathered, or written when its data is too large to
//!     gather);
//! - `send`: from the operation's return to the reply written to the socket
//!   (gathering and the `send` system call; on loopback that call also runs
//!   the client's receive path and wakes the client, most of its time);
//! - `total`: from the read to the reply written.
//!
//! Requests answered on the connection thread are timed; READs and WRITEs
//! handed to helper threads are not. Replies gathered and written together
//! (pipelined requests) count once in `send` and `total`, for the last one.
//! The time the server waits for the client, and the kernel's wake-up of a
//! sleeping connection thread, are outside these stages: a client's round
//! trip less `total` is what the network stack and the wake-up cost.
//! Histograms have four buckets per power of two of nanoseconds, so each
//! figure is exact to within 19 %; memory is fixed (no sample is kept).

use std::time::Duration;

/// Buckets per histogram: four per power of two up to 2^64 ns.
const BUCKETS: usize = 64 * 4;

/// One stage's histogram.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    samples: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            samples: 0,
        }
    }
}

const fn bucket(nanos: u64) -> usize {
    if nanos < 4 {
        // 0 to 3: exact.
        return (nanos & 3) as usize;
    }
    let power = nanos.ilog2();
    // The two bits below the leading one.
    let fraction = (nanos >> (power - 2)) & 3;
    power as usize * 4 + fraction as usize
}

/// The lowest value of bucket `index` (below [`BUCKETS`]).
const fn bucket_floor(index: usize) -> u64 {
    let fraction = (index % 4) as u64;
    if index < 4 {
        return fraction;
    }
    if index < 8 {
        // Unused: 4 ns and up start at index 8.
        return 4;
    }
    let power = index / 4;
    (1_u64 << power) + (fraction << (power - 2))
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(nanos)] += 1;
        self.samples += 1;
    }

    /// Durations counted.
    #[must_use]
    pub const fn samples(&self) -> u64 {
        self.samples
    }

    /// The lower bound of the bucket holding quantile `q` (0 to 1).
    #[must_use]
    pub fn quantile(&self, q: f64) -> Duration {
        if self.samples == 0 {
            return Duration::ZERO;
        }
        // Rank of the quantile, 1-based; q is clamped to 0..=1.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank between 1 and the sample count"
        )]
        let rank = ((q.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(bucket_floor(index));
            }
        }
        Duration::from_nanos(u64::MAX)
    }
}

impl Stages {
    /// Counts one operation that took `port` in all, of which `inside` in
    /// the port's own stages.
    pub fn record_port(&mut self, port: Duration, inside: crate::port::timing::PortTimes) {
        self.port.record(port);
        self.gate.record(inside.gate);
        self.driver.record(inside.driver);
        self.completion.record(inside.completion);
        let measured = inside.gate + inside.driver + inside.completion;
        self.bridge.record(port.saturating_sub(measured));
    }
}

/// The stages of one connection.
#[derive(Clone, Debug, Default)]
pub struct Stages {
    /// Read to request ready.
    pub receive: Histogram,
    /// The block operation in the port.
    pub port: Histogram,
    /// `port` outside the three below.
    pub bridge: Histogram,
    /// Port and call gate around the driver call.
    pub gate: Histogram,
    /// Inside the driver.
    pub driver: Histogram,
    /// The completed SRB to the result.
    pub completion: Histogram,
    /// Operation done to reply written.
    pub send: Histogram,
    /// Read to reply written.
    pub total: Histogram,
}

impl Stages {
    /// One line for the log: median and 99th percentile of each stage, in
    /// microseconds.
    #[must_use]
    pub fn summary(&self) -> String {
        let figure = |h: &Histogram| {
            format!(
                "{:.1}/{:.1}",
                h.quantile(0.5).as_secs_f64() * 1e6,
                h.quantile(0.99).as_secs_f64() * 1e6
            )
        };
        format!(
            "NBD stage times over {} requests, median/p99 in µs: receive {}, port {} [bridge {}, gate {}, driver {}, completion {}], send {}, total {}",
            self.total.samples(),
            figure(&self.receive),
            figure(&self.port),
            figure(&self.bridge),
            figure(&self.gate),
            figure(&self.driver),
            figure(&self.completion),
            figure(&self.send),
            figure(&self.total)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Histogram, bucket, bucket_floor};
    use std::time::Duration;

    #[test]
    fn buckets_are_a_quarter_power_of_two_wide() {
        for nanos in [0_u64, 1, 3, 4, 5, 7, 8, 1000, 33_000, 1 << 40, u64::MAX] {
            let index = bucket(nanos);
            assert!(bucket_floor(index) <= nanos, "{nanos}");
            if index + 1 < super::BUCKETS {
                assert!(bucket_floor(index + 1) > nanos, "{nanos}");
            }
        }
    }

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), Duration::ZERO);
        for micros in 1..=100 {
            histogram.record(Duration::from_micros(micros));
        }
        let median = histogram.quantile(0.5);
        assert!(
            median <= Duration::from_micros(50) && median * 5 >= Duration::from_micros(50) * 4,
            "{median:?}"
        );
        assert!(histogram.quantile(1.0) <= Duration::from_micros(100));
        assert_eq!(histogram.samples(), 100);
    }
}
