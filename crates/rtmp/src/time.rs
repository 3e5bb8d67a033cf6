//! RTMP timestamps are 32-bit milliseconds that wrap after about 49.7 days.
//! [`TimestampUnwrapper`] extends them to a 64-bit timeline with integer math
//! only: each timestamp is placed at the nearest point (within ±2^31 ms) to the
//! previous one, so a wrap from `0xFFFF_FFF0` to `0x10` continues forward by 32
//! ms, and the small backward steps of interleaved audio and video stay small
//! backward steps instead of jumping 49 days ahead.

/// Extends 32-bit wrapping millisecond timestamps to `i64`.
#[derive(Debug, Clone, Default)]
pub struct TimestampUnwrapper {
    last: Option<(u32, i64)>,
}

impl TimestampUnwrapper {
    pub fn new() -> Self {
        Self::default()
    }

    /// The 64-bit value of `ts`. The first call returns `ts` itself.
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let value = match self.last {
            None => i64::from(ts),
            Some((raw, ext)) => {
                // Reinterpreting the wrapping difference as signed gives the
                // nearest step, forward or back.
                let step = ts.wrapping_sub(raw) as i32;
                ext.saturating_add(i64::from(step))
            }
        };
        self.last = Some((ts, value));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_across_the_wrap() {
        let mut u = TimestampUnwrapper::new();
        assert_eq!(u.unwrap(0xFFFF_FF00), 0xFFFF_FF00);
        assert_eq!(u.unwrap(0xFFFF_FFF0), 0xFFFF_FFF0);
        assert_eq!(u.unwrap(0x10), 0x1_0000_0010);
        assert_eq!(u.unwrap(0x05), 0x1_0000_0005, "small step back stays back");
        assert_eq!(
            u.unwrap(0xFFFF_FFFF),
            0xFFFF_FFFF,
            "and back across the wrap"
        );
        assert_eq!(u.unwrap(0x20), 0x1_0000_0020);
    }

    #[test]
    fn many_wraps_stay_monotonic() {
        let mut u = TimestampUnwrapper::new();
        let mut raw = 0u32;
        let mut prev = u.unwrap(raw);
        for _ in 0..1000 {
            raw = raw.wrapping_add(0x4000_0000); // a quarter of the range per step
            let v = u.unwrap(raw);
            assert_eq!(v - prev, 0x4000_0000);
            prev = v;
        }
        assert_eq!(prev, 1000 * 0x4000_0000);
    }
}
