//! Where a stream's segments start, decided once for every rendition, sans-IO.
//!
//! The leading video (the source's keyframes when it is passed through, or
//! the frames the ladder may turn into keyframes when it is not) offers
//! candidates in decode order; a segment starts at the first candidate at or
//! after each point of a grid of segment targets, anchored at the period's
//! first candidate. Every rendition follows the same cuts
//! ([`super::segmenter::Segmenter::cut_at`]), so the same media sequence
//! number holds the same media time in all of them (rfc8216bis 6.2.4).
//!
//! Times are presentation times in one timescale (the pipeline's 90 kHz).
//! The plan also keeps a watermark, the latest presentation time the leader
//! has shown: no later cut can come before it (a keyframe is presented after
//! every frame decoded before it), so a follower that runs ahead of the
//! leader (audio) can hold back what is past it until it knows.

/// The cuts of one stream.
#[derive(Debug, Clone)]
pub struct CutPlan {
    segment: u64,
    /// The period's first candidate: the grid's origin.
    origin: Option<u64>,
    next_boundary: u64,
    last_cut: u64,
    /// This period's cuts, oldest first (one per segment).
    cuts: Vec<u64>,
    /// Counts periods, so followers know when to start over.
    period: u64,
    watermark: Option<u64>,
    /// The longest span between two cuts so far.
    longest: u64,
}

/// A follower's position in a [`CutPlan`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    period: u64,
    next: usize,
}

impl CutPlan {
    /// A plan for segments of `segment` ticks.
    pub fn new(segment: u64) -> Self {
        CutPlan {
            segment: segment.max(1),
            origin: None,
            next_boundary: 0,
            last_cut: 0,
            cuts: Vec::new(),
            period: 0,
            watermark: None,
            longest: 0,
        }
    }

    /// The leader shows a frame at `pts`.
    pub fn seen(&mut self, pts: u64) {
        self.watermark = Some(self.watermark.map_or(pts, |w| w.max(pts)));
    }

    /// The leader has a frame at `pts` that can start a segment (a keyframe,
    /// or a frame the encoder will make one). Returns whether one starts
    /// there: the period's first candidate, and the first at or after each
    /// grid point.
    pub fn offer(&mut self, pts: u64) -> bool {
        self.seen(pts);
        let Some(origin) = self.origin else {
            self.origin = Some(pts);
            self.next_boundary = pts.saturating_add(self.segment);
            self.last_cut = pts;
            return true;
        };
        if pts < self.next_boundary {
            return false;
        }
        // The next grid point strictly after this one.
        let k = (pts - origin) / self.segment + 1;
        self.next_boundary = origin.saturating_add(k.saturating_mul(self.segment));
        self.longest = self.longest.max(pts - self.last_cut);
        self.last_cut = pts;
        self.cuts.push(pts);
        true
    }

    /// Cuts since the follower at `cursor` last looked (not counting the
    /// period's first, where every rendition starts anyway).
    pub fn take(&self, cursor: &mut Cursor) -> &[u64] {
        if cursor.period != self.period {
            *cursor = Cursor {
                period: self.period,
                next: 0,
            };
        }
        let from = cursor.next.min(self.cuts.len());
        cursor.next = self.cuts.len();
        &self.cuts[from..]
    }

    /// The latest presentation time the leader has shown, if any: no cut
    /// will come before it.
    pub fn watermark(&self) -> Option<u64> {
        self.watermark
    }

    /// The longest segment cut so far, ticks (between two cuts).
    pub fn longest(&self) -> u64 {
        self.longest
    }

    /// A new period: the grid starts again at its first candidate.
    pub fn new_period(&mut self) {
        self.origin = None;
        self.cuts.clear();
        self.period += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_the_first_keyframe_at_or_after_each_grid_point() {
        let mut plan = CutPlan::new(90_000);
        let mut cursor = Cursor::default();
        // Keyframes every 0.6 s from 23 ms, frames between.
        let mut starts = Vec::new();
        for i in 0..50u64 {
            let pts = 2070 + i * 3000;
            plan.seen(pts + 6000); // B-frames: later pictures decode first
            if i % 18 == 0 && plan.offer(pts) {
                starts.push(pts);
            }
        }
        assert_eq!(starts, vec![2070, 2070 + 36 * 3000]);
        assert_eq!(plan.take(&mut cursor), &[2070 + 36 * 3000]);
        assert!(plan.take(&mut cursor).is_empty());
        assert_eq!(plan.longest(), 36 * 3000);
        assert_eq!(plan.watermark(), Some(2070 + 49 * 3000 + 6000));
        plan.new_period();
        assert!(
            plan.offer(10_000_000),
            "a period starts with its first candidate"
        );
        assert!(plan.take(&mut cursor).is_empty());
        assert!(plan.offer(10_090_000));
        assert_eq!(plan.take(&mut cursor), &[10_090_000]);
    }

    #[test]
    fn a_late_keyframe_skips_grid_points_without_moving_the_grid() {
        let mut plan = CutPlan::new(1000);
        assert!(plan.offer(0));
        assert!(!plan.offer(999));
        assert!(plan.offer(2500));
        assert!(!plan.offer(2999));
        assert!(plan.offer(3000));
        let mut c = Cursor::default();
        assert_eq!(plan.take(&mut c), &[2500, 3000]);
        assert_eq!(plan.longest(), 2500);
    }
}
