//! Where the segmenter cuts: on its own grid from the first sample, or as
//! a follower where the stream's cut plan says.

use super::*;

impl Segmenter {
    /// Whether a sample (already checked) presented at `pts` for `duration`
    /// ticks starts a new segment.
    pub(super) fn cuts_before(&mut self, pts: u64, duration: u64, sync: bool) -> bool {
        let video = self.is_video();
        let cap = self.follow_cap();
        let Some(q) = self.follow.as_mut() else {
            return self.open.is_some() && sync && pts >= self.next_boundary;
        };
        let past = |c: u64| passes(video, pts, duration, c);
        let Some(open) = self.open.as_ref() else {
            // This sample opens a segment: cuts it is past are behind it.
            let mut passed = 0;
            while q.front().is_some_and(|&c| past(c)) {
                q.pop_front();
                passed += 1;
            }
            if self.window.is_empty() {
                // The first segment of the session starts late (the video
                // has cut already): number it like the video's segment here.
                self.next_msn += passed;
            }
            return false;
        };
        if !sync {
            return false;
        }
        let mut cut = false;
        // Several cuts passed at once (this track had a gap): one segment ends.
        while q.front().is_some_and(|&c| past(c)) {
            q.pop_front();
            cut = true;
        }
        if !cut && pts.saturating_sub(open.start_pts) >= cap {
            self.own_cuts += 1;
            cut = true;
        }
        cut
    }

    /// Whether `next` (presented after the sample just pushed, which lasted
    /// `duration` ticks) starts a new segment: what [`Segmenter::cuts_before`]
    /// will say when it arrives, from the cuts known now. No state changes,
    /// except that a follower counts a cut it makes on its own.
    pub(super) fn cuts_at(&mut self, next: Next, duration: u64) -> bool {
        let video = self.is_video();
        let cap = self.follow_cap();
        let Some(open) = self.open.as_ref() else {
            return false;
        };
        if video && !next.sync {
            return false;
        }
        let Some(q) = self.follow.as_ref() else {
            return next.pts >= self.next_boundary;
        };
        if q.front()
            .is_some_and(|&c| passes(video, next.pts, duration, c))
        {
            return true;
        }
        if next.pts.saturating_sub(open.start_pts) >= cap {
            self.own_cuts += 1;
            return true;
        }
        false
    }

    /// A follower cuts on its own once its segment is this long.
    pub(super) fn follow_cap(&self) -> u64 {
        (self.cfg.segment_target * FOLLOW_CAP_TARGETS).max(rescale(
            FOLLOW_CAP_MIN_MS,
            MILLIS,
            self.track.timescale,
        ))
    }
}
