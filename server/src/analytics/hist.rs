//! A fixed-bucket histogram of milliseconds. Minutes keep histograms rather
//! than percentiles so that any range of minutes adds up exactly (at bucket
//! resolution) into percentiles for the whole range. Counts may come from
//! stored rows of any size: every sum saturates and percentiles are worked
//! out in `u128`.

use app::analytics::Percentiles;
use serde::{Deserialize, Serialize};

/// Bucket lower bounds, ms. The last bucket is open-ended.
pub const BOUNDS: [u32; 22] = [
    0, 100, 200, 300, 400, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000,
    10_000, 15_000, 20_000, 30_000, 60_000,
];

/// Counts per [`BOUNDS`] bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hist(pub Vec<u64>);

impl Hist {
    /// Counts one measurement.
    pub fn add(&mut self, ms: u32) {
        if self.0.len() != BOUNDS.len() {
            self.0.resize(BOUNDS.len(), 0);
        }
        let i = BOUNDS.iter().rposition(|b| ms >= *b).unwrap_or(0);
        self.0[i] = self.0[i].saturating_add(1);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Hist) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = a.saturating_add(*b);
        }
    }

    /// Measurements counted.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |t, n| t.saturating_add(*n))
    }

    /// The `q`-th percentile (0 < q ≤ 100), interpolated inside its bucket.
    pub fn percentile(&self, q: u64) -> Option<u32> {
        // The histogram may have more buckets than BOUNDS (a stored row):
        // those are not counted.
        let counts = || self.0.iter().take(BOUNDS.len()).map(|n| u128::from(*n));
        let total: u128 = counts().sum();
        if total == 0 {
            return None;
        }
        // The rank of the wanted measurement, 1-based.
        let rank = (total * u128::from(q.min(100))).div_ceil(100).max(1);
        let mut seen = 0u128;
        for (i, n) in counts().enumerate() {
            if n == 0 {
                continue;
            }
            if seen + n >= rank {
                let lo = u128::from(BOUNDS[i]);
                let hi = BOUNDS.get(i + 1).map(|b| u128::from(*b)).unwrap_or(lo * 2);
                // Spread the bucket's n measurements evenly over [lo, hi).
                let within = rank - seen;
                let v = lo + (hi - lo) * (2 * within - 1) / (2 * n);
                return Some(u32::try_from(v).unwrap_or(u32::MAX));
            }
            seen += n;
        }
        None
    }

    /// p50, p90 and p99.
    pub fn summary(&self) -> Percentiles {
        Percentiles {
            samples: self.total(),
            p50: self.percentile(50),
            p90: self.percentile(90),
            p99: self.percentile(99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_land_in_the_right_bucket() {
        let mut h = Hist::default();
        assert_eq!(h.percentile(50), None);
        for ms in [120, 130, 140, 900, 5200] {
            h.add(ms);
        }
        let p50 = h.percentile(50).expect("p50");
        assert!((100..200).contains(&p50), "{p50}");
        let p99 = h.percentile(99).expect("p99");
        assert!((5000..6000).contains(&p99), "{p99}");
        let mut other = Hist::default();
        other.add(70_000);
        h.merge(&other);
        assert_eq!(h.total(), 6);
        assert!(h.percentile(100).expect("max") >= 60_000);
        assert_eq!(h.summary().samples, 6);
    }

    #[test]
    fn absurd_stored_counts_neither_overflow_nor_panic() {
        // As a stored row could hold them: huge counts, and more buckets
        // than there are bounds.
        let mut h = Hist(vec![u64::MAX; BOUNDS.len() + 3]);
        h.merge(&Hist(vec![u64::MAX; 2]));
        h.add(100);
        assert_eq!(h.total(), u64::MAX);
        let p50 = h.percentile(50).expect("p50");
        assert!((2000..2500).contains(&p50), "{p50}");
        assert!(h.percentile(100).expect("p100") <= 120_000);
        assert_eq!(h.summary().samples, u64::MAX);
    }
}
