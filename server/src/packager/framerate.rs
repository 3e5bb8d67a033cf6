//! A video rendition's frame rate for the master playlist's `FRAME-RATE`,
//! measured from the frames that were packaged, as an exact fraction.
//!
//! The ingest containers (Matroska and WebM) carry timestamps in whole
//! milliseconds, so one frame of 30 fps media lasts 33 or 34 ms and the rate
//! of a single frame (1000/33 = 30.303) says little. Counted over many frames
//! the rate is exact to the span's rounding: each end of the span is off by
//! at most [`SLACK_MS`] / 2. A rate that encoders and cameras use (30, 30000/1001,
//! 25, …) inside that margin is taken as the exact rate; otherwise the
//! measured fraction itself.
//!
//! `FRAME-RATE` is the maximum frame rate of the variant (rfc8216bis
//! 4.4.6.2): [`max_rate`] takes the fastest rate that several segments keep,
//! measured over those segments together. For constant-rate media that is
//! the rate over the whole window; a camera that slows down in low light
//! reports the rate it had before; one odd segment does not count.

use super::time::{rescale, Timescale, MILLIS};

/// How far a measured span may be off: both of its ends are rounded to the
/// millisecond by the ingest container.
pub const SLACK_MS: u64 = 2;

/// Frame rates encoders and cameras use, as exact fractions.
const STANDARD: [(u32, u32); 21] = [
    (5, 1),
    (10, 1),
    (12, 1),
    (25, 2),
    (15, 1),
    (20, 1),
    (24_000, 1001),
    (24, 1),
    (25, 1),
    (30_000, 1001),
    (30, 1),
    (48_000, 1001),
    (48, 1),
    (50, 1),
    (60_000, 1001),
    (60, 1),
    (72, 1),
    (90, 1),
    (100, 1),
    (120_000, 1001),
    (120, 1),
];

/// `frames` frames in `ticks` of `scale`: the rate in frames per second as
/// an exact fraction `(numerator, denominator)`, snapped to a standard rate
/// if one lies within the measuring margin. `None` for no frames or no time.
pub fn estimate(frames: u64, ticks: u64, scale: Timescale) -> Option<(u32, u32)> {
    estimate_within(frames, ticks, scale, SLACK_MS)
}

/// [`estimate`] for a span off by up to `slack_ms` milliseconds.
fn estimate_within(frames: u64, ticks: u64, scale: Timescale, slack_ms: u64) -> Option<(u32, u32)> {
    if frames == 0 || ticks == 0 {
        return None;
    }
    let per_second = u128::from(scale.get());
    // rate = frames × scale / ticks, compared by cross-multiplying.
    let (num, den) = (u128::from(frames) * per_second, u128::from(ticks));
    let slack = u128::from(rescale(slack_ms, MILLIS, scale).max(1));
    let (low, high) = (den + slack, den.saturating_sub(slack));
    // A standard rate a/b within [num/low, num/high], the closest to num/den.
    let best = STANDARD
        .iter()
        .filter(|&&(a, b)| {
            let (a, b) = (u128::from(a), u128::from(b));
            a * low >= num * b && (high == 0 || a * high <= num * b)
        })
        .min_by_key(|&&(a, b)| {
            let (a, b) = (u128::from(a), u128::from(b));
            // |a/b − num/den| × b × den
            (a * den).abs_diff(num * b) * 1_000_000 / b
        });
    if let Some(&rate) = best {
        return Some(rate);
    }
    let g = gcd(num, den);
    let (n, d) = (num / g, den / g);
    match (u32::try_from(n), u32::try_from(d)) {
        (Ok(n), Ok(d)) => Some((n, d)),
        // Too fine a fraction: to the thousandth, which is all FRAME-RATE shows.
        _ => u32::try_from(n * 1000 / d).ok().map(|milli| (milli, 1000)),
    }
}

/// Whether `(numerator, denominator)` is one of the standard rates (a
/// container's declared rate worth showing before anything was measured).
pub fn is_standard((num, den): (u32, u32)) -> bool {
    den > 0
        && STANDARD
            .iter()
            .any(|&(a, b)| u64::from(a) * u64::from(den) == u64::from(num) * u64::from(b))
}

/// Segments a rate must hold for to be the variant's maximum (fewer while
/// the window has fewer).
const SUSTAINED: usize = 3;

/// The maximum frame rate over consecutive segments given as `(frames,
/// ticks)`: the fastest rate that at least `SUSTAINED` segments keep
/// (within 0.5% of each other), measured over those segments together.
///
/// One odd segment (a few frames squeezed at the start of a stream, a frame
/// dropped) neither sets nor skews it; a camera that slows down in the dark
/// for a while still reports the rate it had in good light.
pub fn max_rate(segments: &[(u64, u64)], scale: Timescale) -> Option<(u32, u32)> {
    let rated: Vec<(usize, u64, u64)> = segments
        .iter()
        .enumerate()
        .filter(|(_, &(f, t))| f > 0 && t > 0)
        .map(|(i, &(f, t))| (i, f, t))
        .collect();
    let need = rated.len().min(SUSTAINED);
    // Fastest first: f1/t1 > f2/t2.
    let mut by_rate = rated.clone();
    by_rate.sort_by(|a, b| {
        (u128::from(b.1) * u128::from(a.2)).cmp(&(u128::from(a.1) * u128::from(b.2)))
    });
    for &(_, fc, tc) in &by_rate {
        // |f/t − fc/tc| ≤ (fc/tc) / 200
        let close = |&&(_, f, t): &&(usize, u64, u64)| {
            let (f, t, fc, tc) = (u128::from(f), u128::from(t), u128::from(fc), u128::from(tc));
            (f * tc).abs_diff(fc * t) * 200 <= fc * t
        };
        let members: Vec<&(usize, u64, u64)> = rated.iter().filter(close).collect();
        if members.len() < need {
            continue;
        }
        let frames = members.iter().map(|m| m.1).sum();
        let ticks = members.iter().map(|m| m.2).sum();
        // Each run of consecutive segments is off by its two rounded ends.
        let runs = members.windows(2).filter(|w| w[1].0 != w[0].0 + 1).count() + 1;
        return estimate_within(frames, ticks, scale, SLACK_MS * runs as u64);
    }
    None
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packager::time::VIDEO_TIMESCALE;

    /// `n` frames at `rate` fps with millisecond timestamps, as the ingest
    /// containers carry them, in 90 kHz ticks: the span from the first frame
    /// to the frame after the last.
    fn span_ms_rounded(n: u64, num: u64, den: u64) -> u64 {
        let at_ms = |i: u64| (i * 1000 * den + num / 2) / num;
        (at_ms(n) - at_ms(0)) * 90
    }

    #[test]
    fn millisecond_timestamps_give_the_exact_standard_rate() {
        // One frame of 30 fps lasts 33 or 34 ms (30.303 or 29.412 fps on its
        // own); within the rounding that is 30 or 30000/1001, not yet which.
        for ms in [33, 34] {
            let one = estimate(1, ms * 90, VIDEO_TIMESCALE);
            assert!(matches!(one, Some((30, 1) | (30_000, 1001))), "{one:?}");
        }
        for (num, den) in [
            (30u64, 1u64),
            (30_000, 1001),
            (25, 1),
            (24_000, 1001),
            (60, 1),
            (50, 1),
        ] {
            // One second and longer: a span of a second is off by at most
            // 0.05%, half the gap between 30 and 30000/1001.
            let r = num.div_ceil(den);
            for n in [r, r + 1, 10 * r, 40 * r] {
                let ticks = span_ms_rounded(n, num, den);
                assert_eq!(
                    estimate(n, ticks, VIDEO_TIMESCALE),
                    Some((num as u32, den as u32)),
                    "{n} frames of {num}/{den} in {ticks} ticks"
                );
            }
        }
    }

    #[test]
    fn other_rates_are_the_measured_fraction() {
        // 27 fps exactly, at 90 kHz: no standard rate is within 2 ms of it.
        assert_eq!(estimate(270, 900_000, VIDEO_TIMESCALE), Some((27, 1)));
        assert_eq!(estimate(0, 10, VIDEO_TIMESCALE), None);
        assert_eq!(estimate(10, 0, VIDEO_TIMESCALE), None);
        assert!(is_standard((60, 2)) && is_standard((30_000, 1001)));
        assert!(!is_standard((1000, 33)) && !is_standard((30, 0)));
    }

    #[test]
    fn the_maximum_of_a_variable_rate_is_its_fastest_segment() {
        let second = 90_000;
        // Constant 29.97 fps in 1 s segments, each off by the ms rounding.
        let cfr: Vec<(u64, u64)> = (0..40)
            .map(|i| {
                let at = |k: u64| (k * 1001 + 15) / 30 * 90;
                (30, at(30 * (i + 1)) - at(30 * i))
            })
            .collect();
        assert_eq!(max_rate(&cfr, VIDEO_TIMESCALE), Some((30_000, 1001)));
        // A camera at 30 fps that slows to 15 in the dark for a while.
        let vfr = [
            (30, second),
            (30, second),
            (30, second),
            (15, second),
            (15, second),
            (15, second),
            (15, second),
            (30, second),
        ];
        assert_eq!(max_rate(&vfr, VIDEO_TIMESCALE), Some((30, 1)));
        // 30 fps whose first segments were squeezed (two GOPs in 1.98 s, one
        // in 0.963 s) and one that lost a frame: the rest say 30.
        let odd = [
            (60, 178_200),
            (30, 89_100),
            (30, 86_670),
            (30, second),
            (29, second),
            (30, second),
            (30, second),
        ];
        assert_eq!(max_rate(&odd, VIDEO_TIMESCALE), Some((30, 1)));
        // Fewer segments than it takes: all of them.
        assert_eq!(max_rate(&[(30, second)], VIDEO_TIMESCALE), Some((30, 1)));
        assert_eq!(max_rate(&[], VIDEO_TIMESCALE), None);
    }
}
