//! Sans-IO segmented WebVTT: the live captions as an HLS `SUBTITLES`
//! rendition.
//!
//! Subtitle segments follow the audio rendition's segments (same sequence
//! numbers, start times, durations, program dates and discontinuities), so a
//! player aligns them with the media by sequence number or by date. A
//! segment is cut once transcription has reached its end (its cues are then
//! known), or when more than [`VttSegmenter::max_pending`] segments wait (a
//! slow transcriber delays captions, never the playlist for long).
//!
//! Every file starts with `X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000`:
//! cue times are the media timeline itself (the fMP4 decode times, in ms).

use std::collections::VecDeque;
use std::fmt::Write as _;

use app::transcripts::{vtt_cue, TranscriptLine};

use super::playlist::format_pdt;

/// The subtitle rendition's directory (`subs/index.m3u8`, `subs/<msn>.vtt`).
pub const SUBTITLES_RENDITION: &str = "subs";

/// The header every segment starts with.
pub const VTT_HEADER: &str = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n";

/// A media segment the subtitles follow. Times in ms on the media timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Its media sequence number.
    pub msn: u64,
    /// Start, ms.
    pub start_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// `EXT-X-PROGRAM-DATE-TIME`, Unix ms.
    pub program_date_time_ms: Option<i64>,
    /// It starts a new period.
    pub discontinuity: bool,
}

/// A finished subtitle segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VttSegment {
    /// The span it covers.
    pub span: SegmentSpan,
    /// The WebVTT file.
    pub text: String,
}

/// Renders one segment: the header and every cue that overlaps `span`.
pub fn render_segment(span: &SegmentSpan, cues: &[TranscriptLine]) -> String {
    let mut out = String::from(VTT_HEADER);
    let (from, to) = (
        span.start_ms as i64,
        (span.start_ms + span.duration_ms) as i64,
    );
    for c in cues.iter().filter(|c| c.start_ms < to && c.end_ms > from) {
        vtt_cue(&mut out, c);
    }
    out
}

/// Cuts the captions into subtitle segments and keeps the live window.
#[derive(Debug, Clone)]
pub struct VttSegmenter {
    window: usize,
    max_pending: usize,
    pending: VecDeque<SegmentSpan>,
    cues: Vec<TranscriptLine>,
    through_ms: i64,
    done: VecDeque<VttSegment>,
    /// Discontinuities that left the window (`EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    ended: bool,
}

impl VttSegmenter {
    /// Keeps `window` segments in the playlist; cuts a segment without its
    /// transcription once more than `max_pending` wait.
    pub fn new(window: usize, max_pending: usize) -> Self {
        VttSegmenter {
            window: window.max(1),
            max_pending,
            pending: VecDeque::new(),
            cues: Vec::new(),
            through_ms: i64::MIN,
            done: VecDeque::new(),
            discontinuity_sequence: 0,
            ended: false,
        }
    }

    /// How many segments may wait for transcription.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }

    /// A media segment closed.
    pub fn segment(&mut self, span: SegmentSpan) -> Vec<VttSegment> {
        self.pending.push_back(span);
        self.cut()
    }

    /// A transcribed line.
    pub fn cue(&mut self, cue: TranscriptLine) {
        self.cues.push(cue);
    }

    /// Transcription is complete up to `ms` on the media timeline.
    pub fn transcribed_through(&mut self, ms: i64) -> Vec<VttSegment> {
        self.through_ms = self.through_ms.max(ms);
        self.cut()
    }

    /// End of stream: every waiting segment is cut, the playlist ends.
    pub fn finish(&mut self) -> Vec<VttSegment> {
        self.ended = true;
        let mut out = Vec::new();
        while let Some(span) = self.pending.pop_front() {
            out.push(self.emit(span));
        }
        out
    }

    fn cut(&mut self) -> Vec<VttSegment> {
        let mut out = Vec::new();
        while let Some(span) = self.pending.front().copied() {
            let end = (span.start_ms + span.duration_ms) as i64;
            if end > self.through_ms && self.pending.len() <= self.max_pending {
                break;
            }
            self.pending.pop_front();
            out.push(self.emit(span));
        }
        out
    }

    fn emit(&mut self, span: SegmentSpan) -> VttSegment {
        let seg = VttSegment {
            span,
            text: render_segment(&span, &self.cues),
        };
        self.done.push_back(seg.clone());
        while self.done.len() > self.window {
            if self.done.pop_front().is_some_and(|s| s.span.discontinuity) {
                self.discontinuity_sequence += 1;
            }
        }
        // Cues that ended before the window are no longer needed.
        if let Some(first) = self.done.front() {
            let from = first.span.start_ms as i64;
            self.cues.retain(|c| c.end_ms > from);
        }
        seg
    }

    /// The segments in the live window, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &VttSegment> {
        self.done.iter()
    }

    /// The subtitle media playlist for the window.
    pub fn playlist(&self) -> String {
        render_playlist(
            self.done.iter().map(|s| &s.span),
            self.discontinuity_sequence,
            self.ended,
            |msn| format!("{msn}.vtt"),
        )
    }
}

/// A WebVTT media playlist (no LL-HLS parts). `ended` adds `EXT-X-ENDLIST`.
pub fn render_playlist<'a>(
    spans: impl Iterator<Item = &'a SegmentSpan> + Clone,
    discontinuity_sequence: u64,
    ended: bool,
    uri: impl Fn(u64) -> String,
) -> String {
    let target = spans
        .clone()
        .map(|s| s.duration_ms.div_ceil(1000))
        .max()
        .unwrap_or(1)
        .max(1);
    let first = spans.clone().next().map(|s| s.msn).unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:6");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
    if discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
        );
    }
    for (i, s) in spans.enumerate() {
        if s.discontinuity && i > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        if let Some(pdt) = s.program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(pdt));
        }
        let _ = writeln!(
            out,
            "#EXTINF:{}.{:03},",
            s.duration_ms / 1000,
            s.duration_ms % 1000
        );
        let _ = writeln!(out, "{}", uri(s.msn));
    }
    if ended {
        let _ = writeln!(out, "#EXT-X-ENDLIST");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(msn: u64) -> SegmentSpan {
        SegmentSpan {
            msn,
            start_ms: msn * 2000,
            duration_ms: 2000,
            program_date_time_ms: Some(1_700_000_000_000 + (msn * 2000) as i64),
            discontinuity: false,
        }
    }

    fn line(start: i64, end: i64, text: &str) -> TranscriptLine {
        TranscriptLine {
            start_ms: start,
            end_ms: end,
            text: text.into(),
        }
    }

    #[test]
    fn segments_wait_for_transcription_then_carry_their_cues() {
        let mut v = VttSegmenter::new(10, 3);
        assert!(v.segment(span(0)).is_empty());
        assert!(v.segment(span(1)).is_empty());
        v.cue(line(500, 3500, "hello world"));
        let out = v.transcribed_through(3500);
        assert_eq!(out.len(), 1, "only segment 0 ends before 3.5 s");
        assert_eq!(
            out[0].text,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n\
             00:00:00.500 --> 00:00:03.500\nhello world\n\n"
        );
        let out = v.transcribed_through(4000);
        assert_eq!(out.len(), 1);
        assert!(out[0].text.contains("hello world"), "the cue spans both");
        // A cue entirely in segment 2 is not in segment 0 or 1.
        v.cue(line(4100, 5000, "later"));
        let out = v.segment(span(2));
        assert!(out.is_empty());
        let out = v.transcribed_through(6000);
        assert!(out[0].text.contains("later") && !out[0].text.contains("hello"));
    }

    #[test]
    fn a_stalled_transcriber_delays_captions_by_at_most_max_pending_segments() {
        let mut v = VttSegmenter::new(10, 2);
        assert!(v.segment(span(0)).is_empty());
        assert!(v.segment(span(1)).is_empty());
        let out = v.segment(span(2));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].span.msn, 0);
        assert_eq!(out[0].text, VTT_HEADER);
        let rest = v.finish();
        assert_eq!(
            rest.iter().map(|s| s.span.msn).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert!(v.playlist().ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn the_playlist_slides_and_counts_discontinuities() {
        let mut v = VttSegmenter::new(2, 0);
        v.segment(span(0));
        let mut s1 = span(1);
        s1.discontinuity = true;
        v.segment(s1);
        v.segment(span(2));
        assert_eq!(
            v.playlist(),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n#EXTINF:2.000,\n1.vtt\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:2.000,\n2.vtt\n"
        );
        v.segment(span(3));
        let p = v.playlist();
        assert!(p.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{p}");
        assert!(p.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{p}");
    }
}
