//! Media time: integer ticks in an explicit timescale. No floats in the pipeline;
//! conversion to seconds happens only when text is rendered (playlists).

use std::fmt;
use std::num::NonZeroU32;

/// Ticks per second. Video uses 90 kHz; audio uses its sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timescale(NonZeroU32);

/// The 90 kHz MPEG clock used for video.
pub const VIDEO_TIMESCALE: Timescale = Timescale(match NonZeroU32::new(90_000) {
    Some(v) => v,
    None => unreachable!(),
});

/// Milliseconds, for configuration and durations measured on the wall clock.
pub const MILLIS: Timescale = Timescale(match NonZeroU32::new(1_000) {
    Some(v) => v,
    None => unreachable!(),
});

impl Timescale {
    /// A timescale of `ticks_per_second`; `None` for zero.
    pub const fn new(ticks_per_second: u32) -> Option<Self> {
        match NonZeroU32::new(ticks_per_second) {
            Some(v) => Some(Timescale(v)),
            None => None,
        }
    }

    /// Ticks per second.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

/// A point or span of media time: `ticks / timescale` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaTime {
    /// Ticks.
    pub ticks: u64,
    /// Ticks per second.
    pub scale: Timescale,
}

impl MediaTime {
    /// `ticks` in `scale`.
    pub const fn new(ticks: u64, scale: Timescale) -> Self {
        MediaTime { ticks, scale }
    }

    /// Converts to another timescale, rounding to the nearest tick (half up).
    /// Exact for any u64 input: the product is computed in u128. Saturates at
    /// `u64::MAX` only for values beyond about 5.8 billion years at 1 GHz.
    pub fn rescale(self, to: Timescale) -> MediaTime {
        MediaTime::new(rescale(self.ticks, self.scale, to), to)
    }

    /// Whole milliseconds (rounded to nearest).
    pub fn as_millis(self) -> u64 {
        rescale(self.ticks, self.scale, MILLIS)
    }

    /// Seconds with exactly three decimals (for `EXTINF`, `DURATION=`, …),
    /// rounded to the nearest millisecond, formatted with integer arithmetic.
    pub fn seconds_3(self) -> String {
        let ms = self.as_millis();
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }

    /// Seconds with five decimals, rounded up (for `PART-TARGET`, which must
    /// not be below any part's duration).
    pub fn seconds_5_ceil(self) -> String {
        let scale = u128::from(self.scale.get());
        let units = (u128::from(self.ticks) * 100_000).div_ceil(scale);
        format!("{}.{:05}", units / 100_000, units % 100_000)
    }

    /// Whole seconds rounded up (for `EXT-X-TARGETDURATION`).
    pub fn ceil_seconds(self) -> u64 {
        self.ticks.div_ceil(u64::from(self.scale.get()))
    }

    /// Whole seconds rounded to the nearest, halves up, from the milliseconds
    /// `EXTINF` prints (what the HLS spec compares with
    /// `EXT-X-TARGETDURATION`: a 1.033 s segment fits a 1 s target, one
    /// printed as 1.500 does not).
    pub fn round_seconds(self) -> u64 {
        (self.as_millis() + 500) / 1000
    }
}

impl fmt::Display for MediaTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.seconds_3())
    }
}

/// Converts `ticks` from one timescale to another, rounding to nearest.
pub fn rescale(ticks: u64, from: Timescale, to: Timescale) -> u64 {
    if from == to {
        return ticks;
    }
    let from = u128::from(from.get());
    let to = u128::from(to.get());
    let v = (u128::from(ticks) * to + from / 2) / from;
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(v: u32) -> Timescale {
        Timescale::new(v).expect("non-zero")
    }

    #[test]
    fn formats_without_floats() {
        assert_eq!(
            MediaTime::new(180_000, VIDEO_TIMESCALE).seconds_3(),
            "2.000"
        );
        assert_eq!(MediaTime::new(30_000, VIDEO_TIMESCALE).seconds_3(), "0.333");
        assert_eq!(
            MediaTime::new(30_000, VIDEO_TIMESCALE).seconds_5_ceil(),
            "0.33334"
        );
        assert_eq!(MediaTime::new(1024, ts(48_000)).seconds_3(), "0.021");
        assert_eq!(MediaTime::new(180_001, VIDEO_TIMESCALE).ceil_seconds(), 3);
        assert_eq!(MediaTime::new(180_000, VIDEO_TIMESCALE).ceil_seconds(), 2);
        assert_eq!(MediaTime::new(92_970, VIDEO_TIMESCALE).round_seconds(), 1);
        assert_eq!(MediaTime::new(135_000, VIDEO_TIMESCALE).round_seconds(), 2);
        assert_eq!(MediaTime::new(134_900, VIDEO_TIMESCALE).round_seconds(), 1);
        // 1499.99 ms prints as 1.500, which rounds up.
        assert_eq!(MediaTime::new(134_999, VIDEO_TIMESCALE).round_seconds(), 2);
        assert_eq!(Timescale::new(0), None);
    }

    #[test]
    fn rescale_rounds_to_nearest() {
        assert_eq!(rescale(1, ts(3), ts(2)), 1); // 0.667 -> 1
        assert_eq!(rescale(1, ts(4), ts(2)), 1); // 0.5 -> 1 (half up)
        assert_eq!(rescale(48_000, ts(48_000), VIDEO_TIMESCALE), 90_000);
        assert_eq!(rescale(u64::MAX, ts(1), ts(1_000_000_000)), u64::MAX);
    }

    proptest! {
        #[test]
        fn rescaling_up_and_back_is_lossless(ticks in 0u64..(1 << 50), a in 1u32..200_000, k in 1u32..100) {
            // to a finer scale that is a multiple of the original: exact both ways
            let from = ts(a);
            let to = ts(a.saturating_mul(k).max(1));
            let there = rescale(ticks, from, to);
            prop_assert_eq!(there, ticks * u64::from(to.get() / from.get()));
            prop_assert_eq!(rescale(there, to, from), ticks);
        }

        #[test]
        fn rescale_error_is_at_most_half_a_tick(ticks in 0u64..(1 << 40), a in 1u32..1_000_000, b in 1u32..1_000_000) {
            let got = u128::from(rescale(ticks, ts(a), ts(b)));
            // |got/b - ticks/a| <= 1/(2b)  <=>  |2*got*a - 2*ticks*b| <= a
            let lhs = (2 * got * u128::from(a)).abs_diff(2 * u128::from(ticks) * u128::from(b));
            prop_assert!(lhs <= u128::from(a));
        }

        #[test]
        fn rescale_is_monotonic(x in 0u64..(1 << 40), d in 0u64..1000, a in 1u32..200_000, b in 1u32..200_000) {
            prop_assert!(rescale(x, ts(a), ts(b)) <= rescale(x + d, ts(a), ts(b)));
        }
    }
}
