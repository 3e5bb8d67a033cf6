//! HLS playlists (rfc8216bis with the Low-Latency extensions), rendered as pure
//! functions of a snapshot: no clock, no I/O. The same media playlist serves
//! low-latency players (parts, preload hints, blocking reload, delta updates)
//! and plain HLS players, which ignore the LL tags and play whole segments.

use std::fmt::Write as _;

use super::time::{MediaTime, MILLIS};

/// A part of a segment as listed in a playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartEntry {
    /// Its duration.
    pub duration: MediaTime,
    /// Whether it starts with a sync sample (`INDEPENDENT=YES`).
    pub independent: bool,
}

/// A segment in the live window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntry {
    /// Media sequence number.
    pub msn: u64,
    /// Its duration (sum of its parts).
    pub duration: MediaTime,
    /// Its parts, in order.
    pub parts: Vec<PartEntry>,
    /// Wall-clock time of its first sample on the broadcaster's capture clock,
    /// in milliseconds since the Unix epoch.
    pub program_date_time_ms: Option<i64>,
    /// It starts a new period (encoder restart): `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    /// A different init segment applies from this segment on (only after a
    /// discontinuity): `EXT-X-MAP` with this URI before it.
    pub map: Option<String>,
}

/// The segment being written, as listed in a playlist: its parts so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSegmentEntry {
    /// Media sequence number.
    pub msn: u64,
    /// The parts published so far.
    pub parts: Vec<PartEntry>,
    /// It starts a new period: `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    /// A different init segment applies from this segment on: `EXT-X-MAP`.
    pub map: Option<String>,
}

/// Another rendition's position, for `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// Relative URI of its media playlist.
    pub uri: String,
    /// Its last media sequence number.
    pub last_msn: u64,
    /// Its last part index within that segment.
    pub last_part: u64,
}

/// Everything a media playlist shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSnapshot {
    /// Configured segment target duration (rounded up to whole seconds when
    /// rendered; raised if a longer segment is in the window).
    pub segment_target: MediaTime,
    /// Part target duration (`PART-TARGET`); parts are never longer.
    pub part_target: MediaTime,
    /// URI of the init segment of the first segment listed; a later segment
    /// with another init segment carries its own [`SegmentEntry::map`].
    pub init_uri: String,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` of the first segment in the window.
    pub discontinuity_sequence: u64,
    /// Complete segments in the window, oldest first.
    pub segments: Vec<SegmentEntry>,
    /// The segment being written: its msn and the parts published so far.
    pub open: Option<OpenSegmentEntry>,
    /// The stream has ended: `EXT-X-ENDLIST`, no preload hint.
    pub ended: bool,
    /// Other renditions' positions.
    pub reports: Vec<RenditionReport>,
}

/// How the playlist was asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaRequest {
    /// `_HLS_skip=YES`: a delta update.
    pub skip: bool,
}

/// How long before the end of the playlist a client may skip from:
/// six target durations, the minimum the spec allows.
pub fn can_skip_until(target_duration_s: u64) -> u64 {
    6 * target_duration_s
}

/// The URI of a whole segment.
pub fn segment_uri(msn: u64) -> String {
    format!("{msn}.m4s")
}

/// The URI of a part.
pub fn part_uri(msn: u64, part: usize) -> String {
    format!("{msn}.{part}.m4s")
}

impl MediaSnapshot {
    /// `EXT-X-TARGETDURATION`: the configured target, raised to cover the
    /// longest segment in the window (rounded to the nearest second, as the
    /// spec compares them: a segment a frame over 1 s keeps a 1 s target, and
    /// players' hold-back with it).
    pub fn target_duration_s(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.duration.round_seconds())
            .chain(std::iter::once(self.segment_target.ceil_seconds()))
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The next part a client would ask for: `(msn, part index)`.
    pub fn next_part(&self) -> (u64, usize) {
        match &self.open {
            Some(o) => (o.msn, o.parts.len()),
            None => (self.segments.last().map(|s| s.msn + 1).unwrap_or(0), 0),
        }
    }

    /// The last published part, `(msn, index)`, if any.
    pub fn last_part(&self) -> Option<(u64, usize)> {
        match &self.open {
            Some(o) if !o.parts.is_empty() => Some((o.msn, o.parts.len() - 1)),
            _ => self
                .segments
                .last()
                .map(|s| (s.msn, s.parts.len().saturating_sub(1))),
        }
    }

    /// Whether the playlist lists part `index` of segment `msn`, or a later
    /// part: what a blocking request with `_HLS_msn=msn&_HLS_part=index`
    /// waits for. An index past the final part of a complete segment means
    /// part 0 of the following segment (rfc8216bis 6.2.5.2: "the Server MUST
    /// treat the request as one for Part Index 0 of the following Parent
    /// Segment").
    pub fn lists_part(&self, msn: u64, index: usize) -> bool {
        let wanted = match self.segments.iter().find(|s| s.msn == msn) {
            Some(s) if index >= s.parts.len() => (msn.saturating_add(1), 0),
            _ => (msn, index),
        };
        self.last_part().is_some_and(|last| last >= wanted)
    }

    /// The first segment whose parts the playlist lists (`EXT-X-PART` tags
    /// are kept for the segments that end within the last three target
    /// durations, rfc8216bis 6.2.2); parts of earlier segments have left it.
    pub fn first_msn_with_parts(&self) -> u64 {
        let target_ms = self.target_duration_s() * 1000;
        let total_ms: u64 = self.segments.iter().map(|s| s.duration.as_millis()).sum();
        let parts_from_ms = total_ms.saturating_sub(3 * target_ms);
        let mut end_ms = 0u64;
        for s in &self.segments {
            end_ms += s.duration.as_millis();
            if end_ms > parts_from_ms {
                return s.msn;
            }
        }
        self.next_part().0
    }

    /// The playlist's duration in milliseconds: its segments plus the parts
    /// of the segment being written.
    pub fn duration_ms(&self) -> u64 {
        let segments: u64 = self.segments.iter().map(|s| s.duration.as_millis()).sum();
        let open: u64 = self
            .open
            .as_ref()
            .map(|o| o.parts.iter().map(|p| p.duration.as_millis()).sum())
            .unwrap_or(0);
        segments + open
    }
}

/// Renders a media playlist.
///
/// Once the stream has ended, `_HLS_skip` is ignored (rfc8216bis 6.2.5.1: "A
/// Server MUST ignore the _HLS_skip directive if the Playlist ... contains an
/// EXT-X-ENDLIST tag"): the whole playlist is rendered.
pub fn render_media(p: &MediaSnapshot, req: MediaRequest) -> String {
    let req = MediaRequest {
        skip: req.skip && !p.ended,
    };
    let target = p.target_duration_s();
    let part_target = p.part_target;
    let mut out = String::with_capacity(256 + p.segments.len() * 160);
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:9");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    // PART-HOLD-BACK: three part targets, the spec's recommendation.
    let hold_back = MediaTime::new(part_target.ticks * 3, part_target.scale);
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={}.000,PART-HOLD-BACK={}",
        can_skip_until(target),
        hold_back.seconds_3()
    );
    let _ = writeln!(
        out,
        "#EXT-X-PART-INF:PART-TARGET={}",
        part_target.seconds_5_ceil()
    );
    let first_msn = p
        .segments
        .first()
        .map(|s| s.msn)
        .or(p.open.as_ref().map(|o| o.msn))
        .unwrap_or(0);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    if p.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            p.discontinuity_sequence
        );
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", p.init_uri);

    // Segments older than the skip boundary can be left out of a delta update.
    // Skipping stops at a discontinuity so its tag is never lost.
    let mut skipped = 0usize;
    if req.skip {
        let total: u64 = p
            .segments
            .iter()
            .map(|s| s.duration.as_millis())
            .sum::<u64>()
            + p.open
                .as_ref()
                .map(|o| o.parts.iter().map(|x| x.duration.as_millis()).sum())
                .unwrap_or(0);
        let boundary = total.saturating_sub(can_skip_until(target) * 1000);
        let mut end = 0u64;
        for s in &p.segments {
            end += s.duration.as_millis();
            if end > boundary || s.discontinuity {
                break;
            }
            skipped += 1;
        }
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
    }

    // Parts are listed for the segments in the last three target durations.
    let parts_from = p.first_msn_with_parts();
    for (i, s) in p.segments.iter().enumerate() {
        if i < skipped {
            continue;
        }
        if s.discontinuity {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        // The first listed segment's init segment is the MAP at the top.
        if let Some(map) = s.map.as_ref().filter(|_| i > 0) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{map}\"");
        }
        // Every segment is dated from its own media time: a player that
        // added up the rounded EXTINFs instead would drift.
        if let Some(ms) = s.program_date_time_ms {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(ms));
        }
        if s.msn >= parts_from {
            write_parts(&mut out, s.msn, &s.parts);
        }
        let _ = writeln!(out, "#EXTINF:{},", s.duration.seconds_3());
        let _ = writeln!(out, "{}", segment_uri(s.msn));
    }
    if let Some(o) = &p.open {
        if o.discontinuity {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        if let Some(map) = o.map.as_ref().filter(|_| !p.segments.is_empty()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{map}\"");
        }
        write_parts(&mut out, o.msn, &o.parts);
    }
    if p.ended {
        let _ = writeln!(out, "#EXT-X-ENDLIST");
    } else {
        let (msn, part) = p.next_part();
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
            part_uri(msn, part)
        );
    }
    for r in &p.reports {
        let _ = writeln!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={},LAST-PART={}",
            r.uri, r.last_msn, r.last_part
        );
    }
    out
}

/// Each part's `DURATION` is the difference of its end and start within the
/// segment, both rounded to the millisecond, so the parts add up to exactly the
/// segment's `EXTINF` (six parts of 333.33 ms are 0.333, 0.334, 0.333, … = 2.000,
/// not 6 × 0.333 = 1.998). Each is within 1 ms of the part's real duration.
fn write_parts(out: &mut String, msn: u64, parts: &[PartEntry]) {
    let mut end = 0u64;
    for (i, part) in parts.iter().enumerate() {
        let scale = part.duration.scale;
        let start_ms = MediaTime::new(end, scale).as_millis();
        end += part.duration.ticks;
        let ms = MediaTime::new(end, scale).as_millis() - start_ms;
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"",
            MediaTime::new(ms, MILLIS).seconds_3(),
            part_uri(msn, i)
        );
        if part.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

/// Formats Unix milliseconds as ISO 8601 UTC with milliseconds.
pub fn format_pdt(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            ms
        ),
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// A variant (video rendition) in the master playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Relative URI of its media playlist.
    pub uri: String,
    /// Peak bits per second, including audio.
    pub bandwidth: u64,
    /// Average bits per second, including audio.
    pub average_bandwidth: u64,
    /// `CODECS`: video plus the audio group's codec.
    pub codecs: String,
    /// Width × height.
    pub resolution: Option<(u32, u32)>,
    /// Frame rate as a fraction (numerator, denominator).
    pub frame_rate: Option<(u32, u32)>,
}

/// An alternative audio rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioRendition {
    /// Relative URI of its media playlist.
    pub uri: String,
    /// Display name.
    pub name: String,
}

/// A subtitles rendition (the live captions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleRendition {
    /// Relative URI of its media playlist.
    pub uri: String,
    /// Display name.
    pub name: String,
    /// BCP 47 language tag, if known.
    pub language: Option<String>,
}

/// Renders the master playlist: audio group first, then variants, highest first.
pub fn render_master(variants: &[Variant], audio: Option<&AudioRendition>) -> String {
    render_master_with(variants, audio, None)
}

/// [`render_master`] with a `SUBTITLES` group (`GROUP-ID="subs"`, not on by
/// default: the player's CC button turns it on).
pub fn render_master_with(
    variants: &[Variant],
    audio: Option<&AudioRendition>,
    subtitles: Option<&SubtitleRendition>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:9");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{}\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{}\"",
            a.name, a.uri
        );
    }
    if let Some(s) = subtitles {
        let _ = write!(
            out,
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{}\",DEFAULT=NO,AUTOSELECT=NO,FORCED=NO",
            s.name
        );
        if let Some(l) = &s.language {
            let _ = write!(out, ",LANGUAGE=\"{l}\"");
        }
        let _ = writeln!(out, ",URI=\"{}\"", s.uri);
    }
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\"",
            v.bandwidth, v.average_bandwidth, v.codecs
        );
        if let Some((w, h)) = v.resolution {
            let _ = write!(out, ",RESOLUTION={w}x{h}");
        }
        if let Some((num, den)) = v.frame_rate.filter(|&(_, d)| d > 0) {
            // three decimals, rounded, with integer arithmetic
            let milli = (u64::from(num) * 1000 + u64::from(den) / 2) / u64::from(den);
            let _ = write!(out, ",FRAME-RATE={}.{:03}", milli / 1000, milli % 1000);
        }
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        if subtitles.is_some() {
            out.push_str(",SUBTITLES=\"subs\"");
        }
        out.push('\n');
        let _ = writeln!(out, "{}", v.uri);
    }
    out
}

#[cfg(test)]
#[path = "playlist_tests.rs"]
mod tests;
