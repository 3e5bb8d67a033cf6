//! Closing parts and segments, and what the playlist shows of them: the
//! measured bitrate and frame rate, and the media snapshot.

use super::*;

impl Segmenter {
    pub(super) fn close_part(&mut self, out: &mut Vec<Output>) {
        let Some(seg) = self.open.as_mut() else {
            return;
        };
        if seg.pending.is_empty() {
            return;
        }
        self.fragment_seq = self.fragment_seq.wrapping_add(1);
        let bytes = fmp4::fragment(&self.track, self.fragment_seq, &seg.pending);
        let independent =
            seg.pending[0].keyframe || !matches!(self.track.codec, fmp4::Codec::Avc { .. });
        let duration = seg.pending_duration;
        let entry = PartEntry {
            duration: MediaTime::new(duration, self.track.timescale),
            independent,
        };
        out.push(Output::Part {
            msn: seg.msn,
            index: seg.parts.len(),
            bytes: bytes.clone(),
            duration,
            independent,
        });
        seg.parts.push((entry, bytes));
        seg.pending.clear();
        seg.pending_duration = 0;
    }

    pub(super) fn close_segment(&mut self, out: &mut Vec<Output>) {
        self.close_part(out);
        let Some(seg) = self.open.take() else { return };
        if seg.parts.is_empty() {
            return;
        }
        let duration: u64 = seg.parts.iter().map(|(p, _)| p.duration.ticks).sum();
        let mut bytes = BytesMut::with_capacity(seg.parts.iter().map(|(_, b)| b.len()).sum());
        for (_, b) in &seg.parts {
            bytes.extend_from_slice(b);
        }
        let bytes = bytes.freeze();
        self.completed += 1;
        self.longest = self.longest.max(duration);
        out.push(Output::Segment {
            msn: seg.msn,
            bytes: bytes.clone(),
            duration,
            start: seg.start,
            program_date_time_ms: seg.program_date_time_ms,
            discontinuity: seg.discontinuity,
        });
        self.window.push_back(Completed {
            entry: SegmentEntry {
                msn: seg.msn,
                duration: MediaTime::new(duration, self.track.timescale),
                parts: seg.parts.into_iter().map(|(p, _)| p).collect(),
                program_date_time_ms: seg.program_date_time_ms,
                discontinuity: seg.discontinuity,
                map: None,
            },
            init_uri: self.init_uri.clone(),
            size: bytes.len() as u64,
            frames: seg.frames,
        });
        while self.window.len() > self.cfg.window_segments {
            // Removing a segment that carries EXT-X-DISCONTINUITY bumps the sequence.
            if self
                .window
                .pop_front()
                .is_some_and(|old| old.entry.discontinuity)
            {
                self.discontinuity_sequence += 1;
            }
        }
    }

    /// Measured bits per second over the complete segments in the window:
    /// `(peak segment, average)`, for the master playlist's `BANDWIDTH` and
    /// `AVERAGE-BANDWIDTH`. `None` before the first segment completes.
    pub fn measured_bitrate(&self) -> Option<(u64, u64)> {
        let scale = u128::from(self.track.timescale.get());
        let bps = |bytes: u64, ticks: u64| {
            u64::try_from(u128::from(bytes) * 8 * scale / u128::from(ticks.max(1)))
                .unwrap_or(u64::MAX)
        };
        let peak = self
            .window
            .iter()
            .map(|c| bps(c.size, c.entry.duration.ticks))
            .max()?;
        let (bytes, ticks) = self.window.iter().fold((0u64, 0u64), |(b, t), c| {
            (b + c.size, t + c.entry.duration.ticks)
        });
        Some((peak, bps(bytes, ticks)))
    }

    /// A video track's maximum frame rate, measured over the complete
    /// segments in the window, as an exact fraction for `FRAME-RATE` (see
    /// [`framerate`]). `None` for audio and before the first segment completes.
    pub fn frame_rate(&self) -> Option<(u32, u32)> {
        if !self.is_video() {
            return None;
        }
        let segments: Vec<(u64, u64)> = self
            .window
            .iter()
            .map(|c| (c.frames, c.entry.duration.ticks))
            .collect();
        framerate::max_rate(&segments, self.track.timescale)
    }

    /// The playlist state right now. Init segment URIs are relative to the
    /// media playlist; `EXT-X-MAP` is repeated where the init segment changes.
    pub fn snapshot(&self) -> MediaSnapshot {
        let scale = self.track.timescale;
        let mut previous: Option<&str> = None;
        let mut segments = Vec::with_capacity(self.window.len());
        for c in &self.window {
            let uri = &c.init_uri;
            let mut e = c.entry.clone();
            e.map = previous.filter(|p| p != uri).map(|_| uri.clone());
            previous = Some(uri);
            segments.push(e);
        }
        let open_map = previous
            .filter(|p| *p != self.init_uri)
            .map(|_| self.init_uri.clone());
        // The target as a whole number of seconds, so the playlist shows it
        // as it is (see `target_duration_s`).
        let target = self
            .target_duration_s()
            .saturating_mul(u64::from(scale.get()));
        MediaSnapshot {
            segment_target: MediaTime::new(self.cfg.segment_target.max(target), scale),
            part_target: MediaTime::new(self.cfg.part_target, scale),
            init_uri: self
                .window
                .front()
                .map(|c| c.init_uri.clone())
                .unwrap_or_else(|| self.init_uri.clone()),
            discontinuity_sequence: self.discontinuity_sequence,
            segments,
            open: self.open.as_ref().map(|s| OpenSegmentEntry {
                msn: s.msn,
                parts: s.parts.iter().map(|(p, _)| p.clone()).collect(),
                discontinuity: s.discontinuity,
                map: open_map,
            }),
            ended: self.ended,
            reports: Vec::new(),
        }
    }
}
