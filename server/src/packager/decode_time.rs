//! Decode timestamps for video whose container carries only presentation
//! times (Matroska and WebM, what browsers and `onair publish` send), sans-IO.
//!
//! A stream whose output order runs at most `depth` frames ahead of its
//! decode order (H.264's `max_num_reorder_frames`, see
//! [`super::h264::Reordering`]) is given the decode times an MP4 muxer would
//! give it: frame `n` (in decode order) decodes at the `n - depth`-th smallest
//! presentation time of the stream. That value is known as soon as frame `n`
//! arrives, so no frame is held back except the first `depth` of a period.
//! Those decode before the first presentation time, one frame interval apart.
//!
//! The result, for any stream that keeps to its depth:
//! - presentation times are exactly the input's (`dts + cts_offset == pts`);
//! - decode times strictly increase, and never exceed presentation times;
//! - with a constant frame rate, every frame lasts one frame interval.
//!
//! A stream that reorders deeper than it said still gets strictly increasing
//! decode times; the frames concerned then have negative composition offsets
//! (`trun` version 1 carries them), and their presentation times stay exact.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::fmp4::Sample;

/// Assigns decode times to samples arriving in decode order with only their
/// presentation time known. Times are ticks in the track's timescale.
#[derive(Debug)]
pub struct DecodeTimes {
    depth: usize,
    /// The nominal frame interval, if the stream states one.
    nominal: Option<u64>,
    /// Decode times of this period start at or after this.
    floor: u64,
    /// The last decode time handed out.
    last: Option<u64>,
    /// Presentation times seen and not yet used as a decode time.
    heap: BinaryHeap<Reverse<u64>>,
    /// The first `depth` samples, held until the first presentation time is known.
    lead_in: Vec<Sample>,
    /// Samples passed this period.
    seen: usize,
}

impl DecodeTimes {
    /// A clock for a stream reordering at most `depth` frames, with nominal
    /// frame interval `nominal` (ticks) if known. Decode times start at or
    /// after `floor`.
    pub fn new(depth: u32, nominal: Option<u64>, floor: u64) -> Self {
        DecodeTimes {
            depth: usize::try_from(depth.min(16)).unwrap_or(16),
            nominal: nominal.filter(|&n| n > 0),
            floor,
            last: None,
            heap: BinaryHeap::new(),
            lead_in: Vec::new(),
            seen: 0,
        }
    }

    /// Takes the next sample in decode order, whose presentation time is in
    /// `sample.dts` (its `cts_offset` is ignored). Returns the samples whose
    /// decode times are now known (`dts` and `cts_offset` set), in order.
    pub fn push(&mut self, mut sample: Sample) -> Vec<Sample> {
        let pts = sample.dts;
        sample.cts_offset = 0;
        self.heap.push(Reverse(pts));
        self.seen += 1;
        if self.seen <= self.depth {
            self.lead_in.push(sample);
            return Vec::new();
        }
        let mut out = self.release_lead_in();
        let Some(Reverse(next)) = self.heap.pop() else {
            return out;
        };
        out.push(self.stamp(sample, pts, next));
        out
    }

    /// End of the period: the samples still held get their decode times.
    pub fn flush(&mut self) -> Vec<Sample> {
        if self.lead_in.is_empty() {
            return Vec::new();
        }
        // Fewer frames than the depth: the last of them takes the place of
        // the frame that would have decoded at the first presentation time.
        let mut held = std::mem::take(&mut self.lead_in);
        let last = held.pop();
        self.depth = held.len();
        self.lead_in = held;
        let mut out = self.release_lead_in();
        if let Some(sample) = last {
            if let Some(Reverse(next)) = self.heap.pop() {
                let pts = sample.dts;
                out.push(self.stamp(sample, pts, next));
            }
        }
        self.heap.clear();
        out
    }

    fn stamp(&mut self, mut sample: Sample, pts: u64, candidate: u64) -> Sample {
        let dts = match self.last {
            Some(last) => candidate.max(last + 1),
            None => candidate.max(self.floor),
        };
        self.last = Some(dts);
        sample.dts = dts;
        sample.cts_offset = i32::try_from(i128::from(pts) - i128::from(dts))
            .unwrap_or(if pts > dts { i32::MAX } else { i32::MIN });
        sample
    }

    /// Dates the held first frames: one frame interval apart, ending one
    /// interval before the first presentation time; squeezed above the floor
    /// if there is no room for that.
    fn release_lead_in(&mut self) -> Vec<Sample> {
        if self.lead_in.is_empty() {
            return Vec::new();
        }
        let held = std::mem::take(&mut self.lead_in);
        let n = held.len() as u64;
        let Some(&Reverse(first)) = self.heap.peek() else {
            return Vec::new();
        };
        // The frame interval: the smallest gap between the presentation times
        // seen so far (an upper bound of the real one), or the nominal one.
        let mut seen: Vec<u64> = self.heap.iter().map(|r| r.0).collect();
        seen.sort_unstable();
        let measured = seen
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|&d| d > 0)
            .min();
        let interval = match (measured, self.nominal) {
            (Some(m), Some(n)) => m.min(n),
            (Some(m), None) => m,
            (None, Some(n)) => n,
            (None, None) => 1,
        };
        let low = self.last.map(|l| l + 1).unwrap_or(self.floor);
        let room = first.saturating_sub(low);
        let mut out = Vec::with_capacity(held.len());
        for (i, sample) in held.into_iter().enumerate() {
            let i = i as u64;
            let candidate = if interval.saturating_mul(n) <= room {
                first - (n - i) * interval
            } else {
                // Not enough room: spread them evenly between the floor and
                // the first presentation time.
                low + room * i / n
            };
            let pts = sample.dts;
            out.push(self.stamp(sample, pts, candidate));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn sample(pts: u64, key: bool) -> Sample {
        Sample {
            dts: pts,
            cts_offset: 0,
            duration: 0,
            keyframe: key,
            data: Bytes::new(),
        }
    }

    fn run(clock: &mut DecodeTimes, pts: &[u64]) -> Vec<Sample> {
        let mut out = Vec::new();
        for (i, &p) in pts.iter().enumerate() {
            out.extend(clock.push(sample(p, i == 0)));
        }
        out.extend(clock.flush());
        out
    }

    /// Presentation order 0..n, turned into a decode order with x264's
    /// B-pyramid (`I P B b b`, depth 2) GOPs of `gop` frames.
    fn pyramid(frames: u64, interval: u64, start: u64) -> Vec<u64> {
        let mut order = vec![0u64];
        let mut next = 1;
        while next < frames {
            let anchor = (next + 3).min(frames - 1);
            order.push(anchor);
            let mut mids: Vec<u64> = (next..anchor).collect();
            if mids.len() == 3 {
                mids = vec![mids[1], mids[0], mids[2]];
            }
            order.extend(mids);
            next = anchor + 1;
        }
        order.into_iter().map(|i| start + i * interval).collect()
    }

    #[test]
    fn a_b_pyramid_keeps_its_presentation_times_and_decodes_one_interval_apart() {
        // 30 fps at 90 kHz, starting at 23 ms like Matroska after AAC priming.
        let pts = pyramid(60, 3000, 2070 + 6000);
        let mut clock = DecodeTimes::new(2, Some(3000), 0);
        let out = run(&mut clock, &pts);
        assert_eq!(out.len(), pts.len());
        for (s, &p) in out.iter().zip(&pts) {
            assert_eq!(s.dts as i64 + i64::from(s.cts_offset), p as i64);
            assert!(s.cts_offset >= 0, "{s:?}");
        }
        let dts: Vec<u64> = out.iter().map(|s| s.dts).collect();
        assert_eq!(dts[0], 2070, "two intervals before the first picture");
        assert!(dts.windows(2).all(|w| w[1] - w[0] == 3000), "{dts:?}");
    }

    #[test]
    fn without_room_the_first_frames_are_squeezed_above_the_floor() {
        let pts = pyramid(20, 3000, 0);
        let mut clock = DecodeTimes::new(2, Some(3000), 0);
        let out = run(&mut clock, &pts);
        let dts: Vec<u64> = out.iter().map(|s| s.dts).collect();
        assert!(dts.windows(2).all(|w| w[1] > w[0]), "{dts:?}");
        assert_eq!(dts[0], 0);
        for (s, &p) in out.iter().zip(&pts) {
            assert_eq!(s.dts as i64 + i64::from(s.cts_offset), p as i64);
        }
    }

    #[test]
    fn a_stream_shorter_than_its_depth_is_still_dated() {
        let mut clock = DecodeTimes::new(4, None, 100);
        let out = run(&mut clock, &[9000, 18000]);
        assert_eq!(out.len(), 2);
        assert!(out[0].dts < out[1].dts && out[0].dts >= 100);
        assert_eq!(out[1].dts as i64 + i64::from(out[1].cts_offset), 18000);
    }

    proptest! {
        /// Any stream reordering within its stated depth: exact presentation
        /// times, strictly increasing decode times never past presentation,
        /// never below the floor; constant-rate streams decode one interval
        /// apart once the first frames are out of the way.
        #[test]
        fn decode_times_are_valid_for_any_reordering(
            depth in 0usize..5,
            swaps in proptest::collection::vec(0usize..5, 1..200),
            interval in 1u64..10_000,
            start in 0u64..1_000_000,
            floor_back in 0u64..100_000,
        ) {
            // A presentation sequence, and a decode order that moves each
            // frame at most `depth` places earlier than in presentation order.
            let n = swaps.len();
            let mut order: Vec<usize> = (0..n).collect();
            for (i, s) in swaps.iter().enumerate() {
                let d = (*s).min(depth);
                if i >= d && i > 0 {
                    // move frame i earlier by d places
                    let f = order.remove(i);
                    order.insert(i - d, f);
                }
            }
            // The first frame decoded is presented first (it is a keyframe).
            order.retain(|&f| f != 0);
            order.insert(0, 0);
            let pts: Vec<u64> = order.iter().map(|&f| start + f as u64 * interval).collect();
            // The actual reorder depth of this order.
            let real = (0..n).map(|i| order[..i].iter().filter(|&&f| f > order[i]).count()).max().unwrap_or(0);
            // H.264 reorders at most 16 frames.
            prop_assume!(real <= 16);
            let floor = start.saturating_sub(floor_back);
            let mut clock = DecodeTimes::new(real as u32, Some(interval), floor);
            let out = run(&mut clock, &pts);
            prop_assert_eq!(out.len(), n);
            for (s, &p) in out.iter().zip(&pts) {
                prop_assert_eq!(s.dts as i64 + i64::from(s.cts_offset), p as i64);
                prop_assert!(s.dts >= floor);
            }
            let dts: Vec<u64> = out.iter().map(|s| s.dts).collect();
            prop_assert!(dts.windows(2).all(|w| w[1] > w[0]), "{:?}", dts);
            let room = start - floor >= real as u64 * interval;
            if room || real == 0 {
                prop_assert!(out.iter().all(|s| s.cts_offset >= 0), "{:?}", out);
                if n > real {
                    prop_assert!(dts.windows(2).all(|w| w[1] - w[0] == interval), "{:?}", dts);
                }
            }
        }
    }
}
