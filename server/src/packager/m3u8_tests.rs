//! Playlists produced the real way (samples through the [`Segmenter`], its
//! snapshot rendered by [`render_media`] / [`render_master`]) and read back by
//! an independent M3U8 parser, quick-m3u8. Every rule is checked on the parsed
//! values, against what was pushed (durations, sync samples, periods, clocks),
//! never by matching the text the renderer wrote.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use proptest::prelude::*;
use quick_m3u8::config::ParsingOptionsBuilder;
use quick_m3u8::tag::hls::{self, MediaType, PreloadHintType};
use quick_m3u8::tag::KnownTag;
use quick_m3u8::{HlsLine, Reader};

use super::cuts::{Cursor, CutPlan};
use super::decode_time::DecodeTimes;
use super::fmp4::{Codec, Sample, Track};
use super::h264;
use super::playlist::{
    render_master, render_media, AudioRendition, MediaRequest, RenditionReport, Variant,
};
use super::segmenter::{Next, Output, Segmenter, SegmenterConfig};
use super::time::{rescale, Timescale, MILLIS, VIDEO_TIMESCALE};

/// Slack for comparing decimals that were parsed from text.
const EPS: f64 = 1e-9;
/// Wall clock (Unix ms) at the first sample: 2026-11-21T22:26:40.000Z.
const CAPTURE_START: i64 = 1_795_300_000_000;

// ---------------------------------------------------------------------------
// The parsed playlists.

/// One `EXT-X-PART`.
#[derive(Debug, Clone, PartialEq)]
struct Part {
    uri: String,
    duration: f64,
    independent: bool,
}

/// The tags that apply to one media segment (complete or being written).
#[derive(Debug, Clone, Default, PartialEq)]
struct Segment {
    /// The URI line; empty for the segment being written.
    uri: String,
    /// `EXTINF`.
    duration: Option<f64>,
    parts: Vec<Part>,
    discontinuity: bool,
    /// `EXT-X-MAP` URI, and whether it came after `EXT-X-DISCONTINUITY`.
    map: Option<(String, bool)>,
    /// `EXT-X-PROGRAM-DATE-TIME` as Unix milliseconds.
    date_ms: Option<i64>,
}

/// A media playlist as quick-m3u8 read it.
#[derive(Debug, Default)]
struct Media {
    version: Option<u64>,
    target_duration: Option<u64>,
    media_sequence: Option<u64>,
    discontinuity_sequence: Option<u64>,
    part_target: Option<f64>,
    /// `(CAN-BLOCK-RELOAD, CAN-SKIP-UNTIL, PART-HOLD-BACK)`.
    server_control: Option<(bool, Option<f64>, Option<f64>)>,
    skipped: Option<u64>,
    /// The `EXT-X-MAP` before the first segment.
    map: Option<String>,
    segments: Vec<Segment>,
    /// Tags after the last URI line: the segment being written.
    open: Segment,
    /// `(TYPE, URI)`.
    preload_hint: Option<(Option<PreloadHintType>, String)>,
    endlist: bool,
    /// `(URI, LAST-MSN, LAST-PART)`.
    reports: Vec<(String, u64, Option<u64>)>,
}

fn reader(text: &str) -> Reader<&str, quick_m3u8::tag::NoCustomTag> {
    Reader::from_str(
        text,
        ParsingOptionsBuilder::new()
            .with_parsing_for_all_tags()
            .build(),
    )
}

/// Every line of `text`; fails on a line quick-m3u8 refuses, and on a tag it
/// could not validate (it reports those as unknown tags), since every tag the
/// renderer writes is one quick-m3u8 knows.
fn lines(text: &str) -> Vec<HlsLine<'_>> {
    let mut r = reader(text);
    let mut out = Vec::new();
    loop {
        match r.read_line() {
            Ok(Some(HlsLine::UnknownTag(t))) => {
                panic!("quick-m3u8 did not accept the tag {t:?} in\n{text}")
            }
            Ok(Some(line)) => out.push(line),
            Ok(None) => break,
            Err(e) => panic!("quick-m3u8 refused a line: {e:?} in\n{text}"),
        }
    }
    assert!(
        matches!(
            out.first(),
            Some(HlsLine::KnownTag(KnownTag::Hls(hls::Tag::M3u(_))))
        ),
        "starts with #EXTM3U:\n{text}"
    );
    out
}

/// Sets a header value that must appear once.
fn once<T: std::fmt::Debug>(slot: &mut Option<T>, value: T, text: &str) {
    assert!(slot.is_none(), "{value:?} appears twice in\n{text}");
    *slot = Some(value);
}

fn parse_media(text: &str) -> Media {
    let mut m = Media::default();
    let mut pending = Segment::default();
    for line in lines(text).into_iter().skip(1) {
        let tag = match line {
            HlsLine::Uri(uri) => {
                assert!(pending.duration.is_some(), "{uri} has no EXTINF in\n{text}");
                pending.uri = uri.to_string();
                m.segments.push(std::mem::take(&mut pending));
                continue;
            }
            HlsLine::KnownTag(KnownTag::Hls(tag)) => tag,
            other => panic!("unexpected line {other:?} in\n{text}"),
        };
        match tag {
            hls::Tag::Version(v) => once(&mut m.version, v.version(), text),
            hls::Tag::Targetduration(t) => once(&mut m.target_duration, t.target_duration(), text),
            hls::Tag::MediaSequence(s) => once(&mut m.media_sequence, s.media_sequence(), text),
            hls::Tag::DiscontinuitySequence(s) => once(
                &mut m.discontinuity_sequence,
                s.discontinuity_sequence(),
                text,
            ),
            hls::Tag::PartInf(p) => once(&mut m.part_target, p.part_target(), text),
            hls::Tag::ServerControl(s) => once(
                &mut m.server_control,
                (s.can_block_reload(), s.can_skip_until(), s.part_hold_back()),
                text,
            ),
            hls::Tag::Skip(s) => {
                assert!(
                    m.segments.is_empty(),
                    "EXT-X-SKIP after a segment in\n{text}"
                );
                once(&mut m.skipped, s.skipped_segments(), text)
            }
            hls::Tag::Map(map) if m.segments.is_empty() && pending == Segment::default() => {
                once(&mut m.map, map.uri().to_string(), text)
            }
            hls::Tag::Map(map) => once(
                &mut pending.map,
                (map.uri().to_string(), pending.discontinuity),
                text,
            ),
            hls::Tag::Discontinuity(_) => {
                assert!(!pending.discontinuity, "two discontinuities in\n{text}");
                pending.discontinuity = true;
            }
            hls::Tag::ProgramDateTime(d) => {
                once(&mut pending.date_ms, unix_ms(d.program_date_time()), text)
            }
            hls::Tag::Part(p) => pending.parts.push(Part {
                uri: p.uri().to_string(),
                duration: p.duration(),
                independent: p.independent(),
            }),
            hls::Tag::Inf(inf) => once(&mut pending.duration, inf.duration(), text),
            hls::Tag::PreloadHint(h) => once(
                &mut m.preload_hint,
                (h.hint_type().known().copied(), h.uri().to_string()),
                text,
            ),
            hls::Tag::RenditionReport(r) => {
                m.reports
                    .push((r.uri().to_string(), r.last_msn(), r.last_part()))
            }
            hls::Tag::Endlist(_) => {
                assert!(!m.endlist, "two EXT-X-ENDLIST in\n{text}");
                m.endlist = true;
            }
            other => panic!("unexpected tag {other:?} in a media playlist:\n{text}"),
        }
    }
    assert!(
        pending.duration.is_none(),
        "EXTINF without a URI at the end of\n{text}"
    );
    m.open = pending;
    m
}

/// A parsed `EXT-X-PROGRAM-DATE-TIME` as Unix milliseconds.
fn unix_ms(d: quick_m3u8::date::DateTime) -> i64 {
    let month = time::Month::try_from(d.date_month).expect("month");
    let date = time::Date::from_calendar_date(
        i32::try_from(d.date_fullyear).expect("year"),
        month,
        d.date_mday,
    )
    .expect("calendar date");
    let midnight = date.midnight().assume_utc().unix_timestamp() * 1000;
    let offset = d.timezone_offset;
    let sign = if offset.time_hour < 0 { -1 } else { 1 };
    let offset_min = i64::from(offset.time_hour) * 60 + sign * i64::from(offset.time_minute);
    midnight
        + (i64::from(d.time_hour) * 60 + i64::from(d.time_minute) - offset_min) * 60_000
        + (d.time_second * 1000.0).round() as i64
}

/// One `EXT-X-STREAM-INF` and its URI.
#[derive(Debug)]
struct StreamInf {
    bandwidth: u64,
    average_bandwidth: Option<u64>,
    codecs: Option<String>,
    resolution: Option<(u64, u64)>,
    frame_rate: Option<f64>,
    audio: Option<String>,
    uri: String,
}

/// A master playlist as quick-m3u8 read it.
#[derive(Debug, Default)]
struct Master {
    independent_segments: bool,
    /// `(TYPE, GROUP-ID, NAME, URI)` of every `EXT-X-MEDIA`.
    media: Vec<(Option<MediaType>, String, String, Option<String>)>,
    variants: Vec<StreamInf>,
}

fn parse_master(text: &str) -> Master {
    let mut m = Master::default();
    let mut pending: Option<StreamInf> = None;
    for line in lines(text).into_iter().skip(1) {
        match line {
            HlsLine::Uri(uri) => {
                let mut v = pending.take().expect("a URI line follows EXT-X-STREAM-INF");
                v.uri = uri.to_string();
                m.variants.push(v);
            }
            HlsLine::KnownTag(KnownTag::Hls(tag)) => {
                assert!(
                    pending.is_none(),
                    "no URI after EXT-X-STREAM-INF in\n{text}"
                );
                match tag {
                    hls::Tag::Version(_) => {}
                    hls::Tag::IndependentSegments(_) => m.independent_segments = true,
                    hls::Tag::Media(x) => m.media.push((
                        x.media_type().known().copied(),
                        x.group_id().to_string(),
                        x.name().to_string(),
                        x.uri().map(str::to_string),
                    )),
                    hls::Tag::StreamInf(s) => {
                        pending = Some(StreamInf {
                            bandwidth: s.bandwidth(),
                            average_bandwidth: s.average_bandwidth(),
                            codecs: s.codecs().map(str::to_string),
                            resolution: s.resolution().map(|r| (r.width, r.height)),
                            frame_rate: s.frame_rate(),
                            audio: s.audio().map(str::to_string),
                            uri: String::new(),
                        })
                    }
                    other => panic!("unexpected tag {other:?} in a master playlist:\n{text}"),
                }
            }
            other => panic!("unexpected line {other:?} in\n{text}"),
        }
    }
    assert!(
        pending.is_none(),
        "no URI after EXT-X-STREAM-INF in\n{text}"
    );
    m
}

// ---------------------------------------------------------------------------
// Driving a segmenter and remembering the ground truth.

fn avc_track(width: u32, height: u32, level: u8) -> Track {
    Track {
        id: 1,
        timescale: VIDEO_TIMESCALE,
        codec: Codec::Avc {
            sps: vec![Bytes::copy_from_slice(&[0x67, 0x64, 0x00, level])],
            pps: vec![Bytes::from_static(&[0x68, 0xce])],
            info: h264::SpsInfo {
                profile: 0x64,
                constraints: 0x00,
                level,
                width,
                height,
            },
        },
    }
}

fn aac_track(rate: u32) -> Track {
    aac_track_with(rate, 2)
}

fn aac_track_with(rate: u32, channels: u16) -> Track {
    Track {
        id: 2,
        timescale: Timescale::new(rate).expect("rate"),
        codec: Codec::Aac {
            sample_rate: rate,
            channels,
            asc: Bytes::copy_from_slice(&[0x11, 0x80 | (channels as u8) << 3]),
        },
    }
}

/// Timing in milliseconds, converted to the track's timescale the way the live
/// pipeline does it.
fn config(scale: Timescale, segment_ms: u64, part_ms: u64, window: usize) -> SegmenterConfig {
    SegmenterConfig {
        segment_target: rescale(segment_ms, MILLIS, scale),
        part_target: rescale(part_ms, MILLIS, scale),
        window_segments: window,
    }
}

/// A period: where it starts on the continuous clock, its capture clock, and
/// how many milliseconds that clock may be off: 0 when it was given, one more
/// for each restart that continued the previous clock (each rounds to 1 ms).
#[derive(Debug, Clone)]
struct Period {
    start: u64,
    clock_ms: Option<i64>,
    slack_ms: i64,
    init_uri: String,
}

/// A segmenter plus everything that was pushed into it: media time on one
/// continuous clock (ticks since the first sample, across periods), where the
/// sync samples are, and where each part it published starts.
struct Run {
    seg: Segmenter,
    video: bool,
    scale: Timescale,
    /// Next sample's dts in the current period (restarts at 0 in a new period).
    dts: u64,
    /// Frames pushed in the current period.
    frames: u64,
    pushed: u64,
    sync_at: HashSet<u64>,
    /// (msn, index) → (start, duration) on the continuous clock.
    parts: HashMap<(u64, usize), (u64, u64)>,
    parts_end: u64,
    /// msn → duration of every completed segment.
    segments: HashMap<u64, u64>,
    periods: Vec<Period>,
    /// The last (msn, part) the segmenter published.
    last_part: Option<(u64, usize)>,
}

impl Run {
    fn new(track: Track, cfg: SegmenterConfig, capture_ms: Option<i64>) -> Self {
        let video = matches!(track.codec, Codec::Avc { .. });
        let scale = track.timescale;
        Run {
            seg: Segmenter::new(track, cfg, capture_ms),
            video,
            scale,
            dts: 0,
            frames: 0,
            pushed: 0,
            sync_at: HashSet::new(),
            parts: HashMap::new(),
            parts_end: 0,
            segments: HashMap::new(),
            periods: vec![Period {
                start: 0,
                clock_ms: capture_ms,
                slack_ms: 0,
                init_uri: "init.mp4".into(),
            }],
            last_part: None,
        }
    }

    fn record(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Part {
                    msn,
                    index,
                    duration,
                    ..
                } => {
                    assert!(
                        self.parts
                            .insert((msn, index), (self.parts_end, duration))
                            .is_none(),
                        "part {msn}.{index} published twice"
                    );
                    self.parts_end += duration;
                    self.last_part = Some((msn, index));
                }
                Output::Segment { msn, duration, .. } => {
                    assert!(self.segments.insert(msn, duration).is_none());
                }
            }
        }
    }

    fn push(&mut self, duration: u32, keyframe: bool) {
        let sample = Sample {
            dts: self.dts,
            cts_offset: 0,
            duration,
            keyframe,
            data: Bytes::from_static(b"frame"),
        };
        let out = self.seg.push(sample).expect("valid sample");
        if keyframe || !self.video {
            self.sync_at.insert(self.pushed);
        }
        self.pushed += u64::from(duration);
        self.dts += u64::from(duration);
        self.frames += 1;
        self.record(out);
    }

    /// `n` frames with durations from `durations` (cycled) and a sync sample
    /// every `gop` frames of the period.
    fn frames(&mut self, n: usize, durations: &[u32], gop: u64) {
        for i in 0..n {
            let key = self.frames.is_multiple_of(gop);
            self.push(durations[i % durations.len()], key);
        }
    }

    /// Pushes frames until the segmenter has completed segment `msn`.
    fn until_segment(&mut self, msn: u64, durations: &[u32], gop: u64) {
        let mut i = 0;
        while !self.segments.contains_key(&msn) {
            let key = self.frames.is_multiple_of(gop);
            self.push(durations[i % durations.len()], key);
            i += 1;
            assert!(i < 100_000, "segment {msn} never came");
        }
    }

    /// A recorder restart: a new period whose timestamps start again from zero.
    fn new_period(&mut self, capture_ms: Option<i64>) {
        let out = self.seg.new_period(capture_ms);
        self.record(out);
        let prev = self.periods.last().expect("a period").clone();
        // The last period with media in it: its last segment ended here.
        let last = self.periods.iter().rev().find(|p| p.start < self.pushed);
        let (clock_ms, slack_ms) = match (capture_ms, last) {
            (Some(ms), _) => (Some(ms), 0),
            // Continues where the last segment ended (to a millisecond).
            (None, Some(last)) => (
                last.clock_ms
                    .map(|c| c + self.ms(self.pushed - last.start) as i64),
                last.slack_ms + 1,
            ),
            (None, None) => (prev.clock_ms, prev.slack_ms),
        };
        self.periods.push(Period {
            start: self.pushed,
            clock_ms,
            slack_ms,
            init_uri: prev.init_uri,
        });
        self.dts = 0;
        self.frames = 0;
    }

    fn set_track(&mut self, track: Track) -> Option<String> {
        let (out, uri) = self.seg.set_track(track);
        self.record(out);
        if let Some(uri) = &uri {
            self.periods.last_mut().expect("a period").init_uri = uri.clone();
        }
        uri
    }

    fn finish(&mut self) {
        let out = self.seg.finish();
        self.record(out);
    }

    fn ms(&self, ticks: u64) -> u64 {
        rescale(ticks, self.scale, MILLIS)
    }

    fn seconds(&self, ticks: u64) -> f64 {
        ticks as f64 / f64::from(self.scale.get())
    }

    fn period_at(&self, pos: u64) -> &Period {
        self.periods
            .iter()
            .rev()
            .find(|p| p.start <= pos)
            .expect("the first period starts at 0")
    }

    /// Renders the media playlist with `reports`, parses it and checks every
    /// rule that holds for any playlist.
    fn render(&self, skip: bool, reports: &[RenditionReport]) -> (String, Media) {
        let mut snapshot = self.seg.snapshot();
        snapshot.reports = reports.to_vec();
        let text = render_media(&snapshot, MediaRequest { skip });
        let m = parse_media(&text);
        self.check(&text, &m, reports);
        (text, m)
    }

    /// The rules every rendered media playlist follows, checked on the parsed
    /// values against what was pushed.
    fn check(&self, text: &str, m: &Media, reports: &[RenditionReport]) {
        let ctx = || format!("in\n{text}");
        assert!(m.version.is_some_and(|v| v >= 9), "EXT-X-VERSION {}", ctx());

        // EXT-X-PART-INF and EXT-X-SERVER-CONTROL.
        let part_target = m
            .part_target
            .unwrap_or_else(|| panic!("no PART-TARGET {}", ctx()));
        assert!(part_target > 0.0);
        let td = m
            .target_duration
            .unwrap_or_else(|| panic!("no EXT-X-TARGETDURATION {}", ctx()));
        let (block, skip_until, hold_back) = m
            .server_control
            .unwrap_or_else(|| panic!("no EXT-X-SERVER-CONTROL {}", ctx()));
        assert!(block, "CAN-BLOCK-RELOAD=YES {}", ctx());
        let hold_back = hold_back.unwrap_or_else(|| panic!("no PART-HOLD-BACK {}", ctx()));
        assert!(
            hold_back + EPS >= 3.0 * part_target,
            "PART-HOLD-BACK {hold_back} < 3 × PART-TARGET {part_target} {}",
            ctx()
        );
        let skip_until = skip_until.unwrap_or_else(|| panic!("no CAN-SKIP-UNTIL {}", ctx()));
        assert!(
            skip_until + EPS >= 6.0 * td as f64,
            "CAN-SKIP-UNTIL {skip_until} < 6 × {td} {}",
            ctx()
        );

        // Media sequence numbers and segment URIs.
        let media_sequence = m
            .media_sequence
            .unwrap_or_else(|| panic!("no EXT-X-MEDIA-SEQUENCE {}", ctx()));
        let first_listed = media_sequence + m.skipped.unwrap_or(0);
        for (i, s) in m.segments.iter().enumerate() {
            let msn = first_listed + i as u64;
            assert_eq!(
                s.uri,
                format!("{msn}.m4s"),
                "segment URIs are consecutive {}",
                ctx()
            );
            let extinf = s.duration.expect("checked by the parser");
            assert!(
                (extinf.round() as u64) <= td,
                "EXTINF {extinf} rounds above EXT-X-TARGETDURATION {td} {}",
                ctx()
            );
            let ticks = *self
                .segments
                .get(&msn)
                .unwrap_or_else(|| panic!("segment {msn} was never published"));
            assert!(
                (extinf - self.seconds(ticks)).abs() <= 0.0005 + EPS,
                "EXTINF {extinf} for {ticks} ticks {}",
                ctx()
            );
            if !s.parts.is_empty() {
                let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
                assert!(
                    (sum - extinf).abs() <= 0.001 + EPS,
                    "segment {msn}: parts sum to {sum:.6}, EXTINF is {extinf} {}",
                    ctx()
                );
            }
            self.check_parts(msn, &s.parts, part_target, &ctx);
        }
        // Once a segment lists its parts, every later one does; the last one does.
        if let Some(first) = m.segments.iter().position(|s| !s.parts.is_empty()) {
            assert!(
                m.segments[first..].iter().all(|s| !s.parts.is_empty()),
                "parts are listed up to the live edge {}",
                ctx()
            );
        } else {
            assert!(
                m.segments.is_empty(),
                "the last segment lists its parts {}",
                ctx()
            );
        }
        let open_msn = first_listed + m.segments.len() as u64;
        self.check_parts(open_msn, &m.open.parts, part_target, &ctx);
        assert!(m.open.date_ms.is_none() && m.open.uri.is_empty());

        // Periods: discontinuities, init segments and dates, from the ground truth.
        let period_starts: HashSet<u64> = self
            .periods
            .iter()
            .map(|p| p.start)
            .filter(|&s| s > 0)
            .collect();
        // Segments that started a period and have left the window.
        let gone = self
            .parts
            .iter()
            .filter(|((msn, i), (start, _))| {
                *i == 0 && *msn < media_sequence && period_starts.contains(start)
            })
            .count() as u64;
        assert_eq!(
            m.discontinuity_sequence.unwrap_or(0),
            gone,
            "EXT-X-DISCONTINUITY-SEQUENCE counts the discontinuities that left {}",
            ctx()
        );
        assert_ne!(m.discontinuity_sequence, Some(0), "{}", ctx());
        let mut init = m
            .map
            .clone()
            .unwrap_or_else(|| panic!("no EXT-X-MAP before the first segment {}", ctx()));
        for (i, s) in m.segments.iter().enumerate() {
            let msn = first_listed + i as u64;
            let start = self.parts[&(msn, 0)].0;
            let period = self.period_at(start);
            let starts_period = period_starts.contains(&start);
            assert_eq!(
                s.discontinuity,
                starts_period,
                "EXT-X-DISCONTINUITY exactly before the first segment of a period ({msn}) {}",
                ctx()
            );
            if let Some((uri, _)) = &s.map {
                init = uri.clone();
            }
            assert_eq!(init, period.init_uri, "init segment of {msn} {}", ctx());
            // Every segment is dated, from its own media time (a date summed
            // from rounded EXTINFs would drift).
            if let Some(clock) = period.clock_ms {
                let got = s
                    .date_ms
                    .unwrap_or_else(|| panic!("no EXT-X-PROGRAM-DATE-TIME on {msn} {}", ctx()));
                let want = clock + self.ms(start - period.start) as i64;
                assert!(
                    (got - want).abs() <= period.slack_ms,
                    "segment {msn} dated {got}, captured at {want} {}",
                    ctx()
                );
            }
        }
        if let Some(&(start, _)) = self.parts.get(&(open_msn, 0)) {
            let period = self.period_at(start);
            assert_eq!(m.open.discontinuity, period_starts.contains(&start));
            if let Some((uri, _)) = &m.open.map {
                init = uri.clone();
            }
            assert_eq!(
                init,
                period.init_uri,
                "init segment of {open_msn} {}",
                ctx()
            );
        }

        // The preload hint or the end.
        let ended = self.seg.snapshot().ended;
        assert_eq!(m.endlist, ended, "EXT-X-ENDLIST only when ended {}", ctx());
        if ended {
            assert!(
                m.preload_hint.is_none(),
                "no preload hint when ended {}",
                ctx()
            );
        } else {
            let (kind, uri) = m
                .preload_hint
                .clone()
                .unwrap_or_else(|| panic!("no EXT-X-PRELOAD-HINT {}", ctx()));
            assert_eq!(kind, Some(PreloadHintType::Part), "{}", ctx());
            assert_eq!(
                uri,
                format!("{open_msn}.{}.m4s", m.open.parts.len()),
                "the hint names the part after the last listed one {}",
                ctx()
            );
            let next = self.last_part.map_or((open_msn, 0), |(msn, i)| {
                if self.segments.contains_key(&msn) {
                    (msn + 1, 0)
                } else {
                    (msn, i + 1)
                }
            });
            assert_eq!(uri, format!("{}.{}.m4s", next.0, next.1), "{}", ctx());
        }

        // Rendition reports, as given.
        let want: Vec<_> = reports
            .iter()
            .map(|r| (r.uri.clone(), r.last_msn, Some(r.last_part)))
            .collect();
        assert_eq!(m.reports, want, "EXT-X-RENDITION-REPORT {}", ctx());
    }

    /// Part URIs `{msn}.{i}.m4s` with consecutive `i`; durations within the
    /// target and as published; `INDEPENDENT=YES` exactly on parts that start
    /// with a sync sample (all audio parts), so on every segment's first part.
    fn check_parts(&self, msn: u64, parts: &[Part], part_target: f64, ctx: &dyn Fn() -> String) {
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.uri, format!("{msn}.{i}.m4s"), "part URI {}", ctx());
            assert!(
                p.duration <= part_target + EPS,
                "part {} of {} s > PART-TARGET {part_target} {}",
                p.uri,
                p.duration,
                ctx()
            );
            let (start, ticks) = *self
                .parts
                .get(&(msn, i))
                .unwrap_or_else(|| panic!("part {msn}.{i} was never published {}", ctx()));
            // Within 1 ms: part durations are rounded so that they add up to EXTINF.
            assert!(
                (p.duration - self.seconds(ticks)).abs() < 0.001 + EPS,
                "part {} DURATION {} for {ticks} ticks {}",
                p.uri,
                p.duration,
                ctx()
            );
            let sync = self.sync_at.contains(&start);
            assert_eq!(
                p.independent,
                sync,
                "INDEPENDENT on {} (starts with a sync sample: {sync}) {}",
                p.uri,
                ctx()
            );
            if i == 0 {
                assert!(p.independent, "{} starts its segment {}", p.uri, ctx());
            }
        }
    }

    /// This rendition's position, for the others' rendition reports.
    fn report(&self, uri: &str) -> RenditionReport {
        let (msn, part) = self.seg.snapshot().last_part().expect("a part");
        RenditionReport {
            uri: uri.into(),
            last_msn: msn,
            last_part: part as u64,
        }
    }
}

/// Variable frame durations around 30 fps at 90 kHz (29.97, 30, 25, 24, 60 fps
/// and a late frame).
const VFR: [u32; 9] = [3003, 3000, 3600, 2997, 3750, 1500, 3000, 4500, 3003];

/// Variable frame durations whose every 10 frames last exactly 1/3 s, so a
/// 334 ms part holds 10 frames and a keyframe every 40 frames starts a part.
const VFR_10: [u32; 10] = [3003, 2997, 3000, 3600, 2400, 3000, 3000, 3003, 2997, 3000];

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn live_video_playlist_follows_every_ll_hls_rule() {
    let cfg = config(VIDEO_TIMESCALE, 2000, 334, 8);
    let mut run = Run::new(avc_track(1280, 720, 0x1f), cfg, Some(CAPTURE_START));
    // Keyframes every 40 frames (1.33 s) and 2 s segments: some segments have
    // a keyframe inside, at the start of a part.
    run.frames(700, &VFR_10, 40);
    let reports = [RenditionReport {
        uri: "../360p/index.m3u8".into(),
        last_msn: 9,
        last_part: 2,
    }];
    let (text, m) = run.render(false, &reports);
    assert!(m.segments.len() >= 6, "a full window:\n{text}");
    assert!(
        !m.open.parts.is_empty(),
        "a segment is being written:\n{text}"
    );
    let mid_gop = m
        .segments
        .iter()
        .flat_map(|s| s.parts.iter().skip(1))
        .chain(m.open.parts.iter().skip(1));
    assert!(
        mid_gop.clone().any(|p| p.independent) && mid_gop.clone().any(|p| !p.independent),
        "a keyframe inside a segment makes an independent part:\n{text}"
    );

    // Just after a segment closed: no open parts yet, the hint names part 0
    // of the next segment.
    let open = m.media_sequence.expect("msn") + m.segments.len() as u64;
    run.until_segment(open, &VFR_10, 40);
    let (text, m) = run.render(false, &reports);
    assert!(m.open.parts.is_empty(), "{text}");
    let hint = m.preload_hint.expect("hint").1;
    assert_eq!(hint, format!("{}.0.m4s", open + 1), "{text}");
    run.finish();
    let (text, m) = run.render(false, &[]);
    assert!(
        m.endlist && m.preload_hint.is_none() && m.open.parts.is_empty(),
        "{text}"
    );
}

#[test]
fn first_segment_is_dated_from_the_capture_clock() {
    let cfg = config(VIDEO_TIMESCALE, 1000, 250, 10);
    let mut run = Run::new(avc_track(640, 360, 0x1e), cfg, Some(CAPTURE_START + 123));
    run.frames(100, &VFR, 30);
    let (text, m) = run.render(false, &[]);
    assert_eq!(m.media_sequence, Some(0));
    assert_eq!(m.segments[0].date_ms, Some(CAPTURE_START + 123), "{text}");
    // Every segment carries its own date: the capture clock plus its media
    // time, never a sum of rounded EXTINFs (`Run::check` checks each value).
    assert!(m.segments.iter().all(|s| s.date_ms.is_some()), "{text}");
}

#[test]
fn audio_and_video_report_each_other() {
    let mut video = Run::new(
        avc_track(1280, 720, 0x1f),
        config(VIDEO_TIMESCALE, 2000, 334, 6),
        Some(CAPTURE_START),
    );
    let mut audio = Run::new(
        aac_track(48_000),
        config(aac_track(48_000).timescale, 2000, 334, 6),
        Some(CAPTURE_START),
    );
    let mut audio_44 = Run::new(
        aac_track(44_100),
        config(aac_track(44_100).timescale, 2000, 334, 6),
        Some(CAPTURE_START),
    );
    // 9.7 s of each, interleaved; keyframes every 2 s exactly, forced onto the grid.
    for _ in 0..97 {
        video.frames(10, &[3000, 3003, 2997], 60);
        while audio.pushed * 90_000 < video.pushed * 48_000 {
            audio.push(1024, true);
        }
        while audio_44.pushed * 90_000 < video.pushed * 44_100 {
            audio_44.push(1024, true);
        }
    }
    let to_video = [audio.report("../audio/index.m3u8")];
    let to_audio = [video.report("../720p/index.m3u8")];
    let (text, v) = video.render(false, &to_video);
    let (audio_text, a) = audio.render(false, &to_audio);
    audio_44.render(false, &to_audio);
    // The same grid: the same media sequence numbers for the same media time.
    assert_eq!(v.media_sequence, a.media_sequence, "{text}\n{audio_text}");
    assert_eq!(v.segments.len(), a.segments.len(), "{text}\n{audio_text}");
    assert!(a
        .segments
        .iter()
        .flat_map(|s| &s.parts)
        .all(|p| p.independent));
    // And each report names a part listed in the other playlist.
    for ((_, msn, part), other, other_text) in
        [(&v.reports[0], &a, &audio_text), (&a.reports[0], &v, &text)]
    {
        let named = format!("{msn}.{}.m4s", part.expect("LAST-PART"));
        let listed = other
            .segments
            .iter()
            .flat_map(|s| &s.parts)
            .chain(&other.open.parts);
        assert!(
            listed.clone().any(|p| p.uri == named),
            "{named} is in\n{other_text}"
        );
        assert_eq!(
            listed.last().map(|p| p.uri.as_str()),
            Some(named.as_str()),
            "{other_text}"
        );
    }

    audio.finish();
    video.finish();
    audio.render(false, &[]);
    video.render(false, &[]);
}

#[test]
fn delta_update_skips_exactly_the_head_of_the_full_playlist() {
    // 1 s target, a 20-segment window: much longer than 6 target durations.
    let cfg = config(VIDEO_TIMESCALE, 1000, 200, 20);
    let mut run = Run::new(avc_track(640, 360, 0x1e), cfg, Some(CAPTURE_START));
    run.frames(900, &VFR, 30);
    let reports = [RenditionReport {
        uri: "../audio/index.m3u8".into(),
        last_msn: 20,
        last_part: 3,
    }];
    let (full_text, full) = run.render(false, &reports);
    let (delta_text, delta) = run.render(true, &reports);
    let td = full.target_duration.expect("td") as f64;
    let window: f64 = full.segments.iter().filter_map(|s| s.duration).sum();
    assert!(
        window > 6.0 * td + 3.0,
        "a window of {window} s:\n{full_text}"
    );
    assert!(delta.skipped.is_some_and(|n| n > 0), "{delta_text}");
    check_delta(&full_text, &full, &delta_text, &delta);
}

/// A delta update (`_HLS_skip=YES`) against the full playlist of the same
/// moment: `SKIPPED-SEGMENTS` is the number of segments left out, the media
/// sequence is unchanged, the rest is exactly the tail of the full playlist,
/// and what is left covers `CAN-SKIP-UNTIL` (and no more than one segment
/// beyond it, unless skipping stopped at a discontinuity).
fn check_delta(full_text: &str, full: &Media, delta_text: &str, delta: &Media) {
    let both = format!("{full_text}\n{delta_text}");
    assert_eq!(full.skipped, None, "{full_text}");
    let skipped = usize::try_from(delta.skipped.unwrap_or(0)).expect("count");
    assert_eq!(
        skipped,
        full.segments.len() - delta.segments.len(),
        "SKIPPED-SEGMENTS is the number left out:\n{both}"
    );
    assert_eq!(delta.media_sequence, full.media_sequence, "{both}");
    assert_eq!(delta.discontinuity_sequence, full.discontinuity_sequence);
    // The rest is the tail of the full playlist; only the first listed
    // segment gains a date (checked against the capture clock in `check`).
    let undated = |(i, s): (usize, &Segment)| Segment {
        date_ms: if i == 0 { None } else { s.date_ms },
        ..s.clone()
    };
    let tail: Vec<_> = full.segments[skipped..]
        .iter()
        .enumerate()
        .map(undated)
        .collect();
    let rest: Vec<_> = delta.segments.iter().enumerate().map(undated).collect();
    assert_eq!(rest, tail, "the tail of the full playlist:\n{both}");
    assert_eq!(delta.open, full.open, "{both}");
    assert_eq!(delta.preload_hint, full.preload_hint);
    assert_eq!(delta.endlist, full.endlist);
    assert_eq!(delta.reports, full.reports);
    assert_eq!(
        (
            delta.target_duration,
            delta.part_target,
            delta.server_control
        ),
        (full.target_duration, full.part_target, full.server_control)
    );
    if skipped == 0 {
        return;
    }
    // What is left still covers CAN-SKIP-UNTIL from the end ...
    let skip_until = full
        .server_control
        .and_then(|s| s.1)
        .expect("CAN-SKIP-UNTIL");
    let left: f64 = delta
        .segments
        .iter()
        .filter_map(|s| s.duration)
        .sum::<f64>()
        + delta.open.parts.iter().map(|p| p.duration).sum::<f64>();
    // Each printed duration is rounded to the millisecond (±0.5 ms), so their
    // sum may be off by that much per entry.
    let slack = 0.0005 * (delta.segments.len() + delta.open.parts.len() + 1) as f64;
    assert!(left + slack >= skip_until, "{left} s left:\n{both}");
    // ... and skipping one more segment would not have.
    if let Some(first) = delta.segments.first().filter(|s| !s.discontinuity) {
        let without = left - first.duration.expect("EXTINF");
        assert!(
            without < skip_until + slack,
            "{without} s would do:\n{both}"
        );
    }
}

#[test]
fn discontinuities_new_init_segments_and_their_dates() {
    let cfg = config(VIDEO_TIMESCALE, 1000, 250, 3);
    let mut run = Run::new(avc_track(640, 360, 0x1e), cfg, Some(CAPTURE_START));
    run.frames(75, &VFR, 30);
    let (text, m) = run.render(false, &[]);
    assert_eq!(m.segments[0].date_ms, Some(CAPTURE_START), "{text}");
    assert!(m.segments.iter().all(|s| !s.discontinuity), "{text}");
    assert_eq!(m.map.as_deref(), Some("init.mp4"));

    // The recorder restarts 40 s later with other codec parameters.
    let restart = CAPTURE_START + 40_000;
    run.new_period(Some(restart));
    assert_eq!(
        run.set_track(avc_track(1280, 720, 0x1f)).as_deref(),
        Some("init-1.mp4")
    );
    let first_new = run.parts.keys().map(|k| k.0).max().expect("parts") + 1;
    run.frames(70, &VFR, 30);
    let (text, m) = run.render(false, &[]);
    let ms = m.media_sequence.expect("msn");
    let new = &m.segments[usize::try_from(first_new - ms).expect("listed")];
    assert_eq!(new.uri, format!("{first_new}.m4s"));
    assert!(new.discontinuity, "{text}");
    assert_eq!(
        new.map,
        Some(("init-1.mp4".to_string(), true)),
        "EXT-X-MAP follows EXT-X-DISCONTINUITY:\n{text}"
    );
    assert_eq!(new.date_ms, Some(restart), "{text}");
    assert_eq!(m.map.as_deref(), Some("init.mp4"), "{text}");
    assert_eq!(m.discontinuity_sequence, None, "{text}");

    // A window of 3: the discontinuity leaves it, the sequence counts it and
    // the new init segment becomes the one at the top.
    run.frames(150, &VFR, 30);
    let (text, m) = run.render(false, &[]);
    assert_eq!(m.discontinuity_sequence, Some(1), "{text}");
    assert!(
        m.segments
            .iter()
            .all(|s| !s.discontinuity && s.map.is_none()),
        "{text}"
    );
    assert_eq!(m.map.as_deref(), Some("init-1.mp4"), "{text}");

    // A restart without a clock of its own continues the dates; same
    // parameters, so no new init segment.
    run.new_period(None);
    assert_eq!(run.set_track(avc_track(1280, 720, 0x1f)), None);
    run.frames(40, &VFR, 30);
    let (text, m) = run.render(false, &[]);
    assert_eq!(m.discontinuity_sequence, Some(1), "{text}");
    let disc = m.segments.iter().find(|s| s.discontinuity).expect("{text}");
    assert_eq!(disc.map, None, "{text}");
    assert!(disc.date_ms.is_some(), "{text}");
    run.frames(150, &VFR, 30);
    run.finish();
    let (text, m) = run.render(false, &[]);
    assert_eq!(m.discontinuity_sequence, Some(2), "{text}");
}

#[test]
fn master_playlist_names_every_variant_and_the_audio_group() {
    let rungs = [
        ("720p", avc_track(1280, 720, 0x1f)),
        ("360p", avc_track(640, 360, 0x1e)),
    ];
    let mut audio = Run::new(
        aac_track(48_000),
        config(aac_track(48_000).timescale, 2000, 334, 6),
        None,
    );
    for _ in 0..300 {
        audio.push(1024, true);
    }
    let (audio_peak, audio_avg) = audio.seg.measured_bitrate().expect("audio segments");
    let mut variants = Vec::new();
    for (name, track) in rungs {
        let Codec::Avc { info, .. } = &track.codec else {
            unreachable!()
        };
        let (codec, size) = (info.codec_string(), (info.width, info.height));
        let mut run = Run::new(track, config(VIDEO_TIMESCALE, 2000, 334, 6), None);
        run.frames(200, &VFR, 60);
        let (peak, avg) = run.seg.measured_bitrate().expect("video segments");
        variants.push(Variant {
            uri: format!("{name}/index.m3u8"),
            bandwidth: peak + audio_peak,
            average_bandwidth: avg + audio_avg,
            codecs: format!("{codec},mp4a.40.2"),
            resolution: Some(size),
            frame_rate: Some((30_000, 1001)),
        });
    }
    let text = render_master(
        &variants,
        Some(&AudioRendition {
            uri: "audio/index.m3u8".into(),
            name: "Audio".into(),
        }),
    );
    let m = parse_master(&text);
    assert!(m.independent_segments, "{text}");
    assert_eq!(m.variants.len(), 2, "{text}");
    let audio_groups: Vec<&str> = m
        .media
        .iter()
        .filter(|x| x.0 == Some(MediaType::Audio))
        .map(|x| x.1.as_str())
        .collect();
    assert_eq!(m.media[0].3.as_deref(), Some("audio/index.m3u8"), "{text}");
    for (v, want) in m.variants.iter().zip(&variants) {
        assert_eq!(v.uri, want.uri);
        let avg = v.average_bandwidth.expect("AVERAGE-BANDWIDTH");
        assert!(v.bandwidth >= avg && avg > 0, "{text}");
        let codecs = v.codecs.as_deref().expect("CODECS");
        assert_eq!(codecs, want.codecs, "{text}");
        let (w, h) = want.resolution.expect("size");
        assert_eq!(v.resolution, Some((u64::from(w), u64::from(h))), "{text}");
        let fps = v.frame_rate.expect("FRAME-RATE");
        assert!((fps - 30_000.0 / 1001.0).abs() < 0.0006, "{fps}");
        let group = v.audio.as_deref().expect("AUDIO");
        assert!(
            audio_groups.contains(&group),
            "AUDIO={group} has an EXT-X-MEDIA:\n{text}"
        );
    }

    // Audio only: the audio playlist is the variant, no group.
    let text = render_master(
        &[Variant {
            uri: "audio/index.m3u8".into(),
            bandwidth: audio_peak,
            average_bandwidth: audio_avg,
            codecs: "mp4a.40.2".into(),
            resolution: None,
            frame_rate: None,
        }],
        None,
    );
    let m = parse_master(&text);
    assert!(m.media.is_empty() && m.variants.len() == 1, "{text}");
    let v = &m.variants[0];
    assert!(v.bandwidth >= v.average_bandwidth.expect("AVERAGE-BANDWIDTH"));
    assert_eq!(
        (v.audio.as_deref(), v.codecs.as_deref()),
        (None, Some("mp4a.40.2"))
    );
}

#[test]
#[should_panic(expected = "quick-m3u8 did not accept the tag")]
fn a_tag_quick_m3u8_cannot_validate_fails_the_check() {
    // EXT-X-PART without its required DURATION.
    parse_media("#EXTM3U\n#EXT-X-PART:URI=\"0.0.m4s\"\n");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random VFR frame durations, keyframe patterns, part and segment
    /// targets, window sizes, restarts (with or without a capture clock and
    /// new codec parameters), live or ended: the full playlist and the delta
    /// update always parse and follow every rule in `Run::check`.
    #[test]
    fn any_stream_renders_a_valid_playlist(
        video in proptest::bool::ANY,
        frames in proptest::collection::vec((1u32..=9000, proptest::bool::weighted(0.08)), 1..800),
        part_ms in 100u64..1000,
        segment_ms in 500u64..4000,
        window in 1usize..24,
        restarts in proptest::collection::vec((0usize..800, proptest::bool::ANY, proptest::bool::ANY), 0..3),
        ended in proptest::bool::ANY,
    ) {
        let scale = if video { VIDEO_TIMESCALE } else { Timescale::new(48_000).expect("rate") };
        let track = if video { avc_track(640, 360, 0x1e) } else { aac_track(48_000) };
        let cfg = config(scale, segment_ms, part_ms, window);
        let mut run = Run::new(track, cfg, Some(CAPTURE_START));
        let mut inits = 0;
        for (i, &(duration, key)) in frames.iter().enumerate() {
            for &(_, clock, params) in restarts.iter().filter(|r| r.0 == i && i > 0) {
                // A new period, with its own capture clock or continuing the
                // last, and maybe new codec parameters (a new init segment).
                run.new_period(clock.then_some(CAPTURE_START + 3_600_000));
                if params {
                    inits += 1;
                    let track = if video {
                        avc_track(640 + 16 * inits, 360, 0x1e)
                    } else {
                        aac_track_with(48_000, if inits % 2 == 1 { 1 } else { 2 })
                    };
                    let uri = run.set_track(track);
                    prop_assert_eq!(uri, Some(format!("init-{inits}.mp4")));
                }
            }
            // Audio durations in its own timescale (at most 100 ms).
            let duration = if video { duration } else { (duration * 8 / 15).max(1) };
            let first = run.frames == 0;
            run.push(duration, first || key);
        }
        if ended {
            run.finish();
        }
        let reports = [RenditionReport { uri: "../a/index.m3u8".into(), last_msn: 3, last_part: 1 }];
        let (full_text, full) = run.render(false, &reports);
        let (delta_text, delta) = run.render(true, &reports);
        check_delta(&full_text, &full, &delta_text, &delta);
    }
}

/// Pushes samples the way the live pipeline does: each one with what is
/// known about the next (video: held back one frame; audio: nothing needed),
/// publishing a playlist after every step that produced media, and checks
/// that every preload hint published names the part published next.
struct Hints {
    seg: Segmenter,
    video: bool,
    /// The hint of the last playlist published, not yet followed by a part.
    hint: Option<(u64, usize)>,
    /// Hints checked that named a segment's first part (after the first).
    boundaries: usize,
    /// Segments completed.
    segments: usize,
}

impl Hints {
    fn step(&mut self, sample: Sample, next: Option<Next>) -> Result<(), TestCaseError> {
        let out = if self.video {
            self.seg.push_before(sample, next)
        } else {
            self.seg.push(sample)
        }
        .expect("valid sample");
        self.publish(out)
    }

    fn publish(&mut self, out: Vec<Output>) -> Result<(), TestCaseError> {
        if out.is_empty() {
            return Ok(());
        }
        // The playlist changes now: the part it hinted must be the first
        // thing published (not a segment closed without it).
        let first_part = out.iter().find_map(|o| match o {
            Output::Part { msn, index, .. } => Some((*msn, *index)),
            Output::Segment { .. } => None,
        });
        let ended = self.seg.snapshot().ended;
        if let Some(hint) = self.hint.take().filter(|_| !ended || first_part.is_some()) {
            // (The stream may end before the hinted part comes.)
            prop_assert_eq!(Some(hint), first_part, "the hinted part is the next one");
            if hint.1 == 0 && hint.0 > 0 {
                self.boundaries += 1;
            }
        }
        self.segments += out
            .iter()
            .filter(|o| matches!(o, Output::Segment { .. }))
            .count();
        let snapshot = self.seg.snapshot();
        let text = render_media(&snapshot, MediaRequest::default());
        let m = parse_media(&text);
        self.hint = m.preload_hint.map(|(_, uri)| {
            let (msn, part) = uri
                .trim_end_matches(".m4s")
                .split_once('.')
                .expect("msn.part");
            (msn.parse().expect("msn"), part.parse().expect("part"))
        });
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Variable frame durations, keyframe patterns, part and segment
    /// targets: every `EXT-X-PRELOAD-HINT` names the part that is published
    /// next, at segment boundaries too (rfc8216bis 4.4.5.3: the URI "MUST
    /// match the URI that will be subsequently added to the Playlist").
    #[test]
    fn the_preload_hint_names_the_part_that_comes_next(
        video in proptest::bool::ANY,
        frames in proptest::collection::vec((1u32..=9000, proptest::bool::weighted(0.08)), 1..600),
        part_ms in 100u64..1000,
        segment_ms in 500u64..4000,
    ) {
        let scale = if video { VIDEO_TIMESCALE } else { Timescale::new(48_000).expect("rate") };
        let track = if video { avc_track(640, 360, 0x1e) } else { aac_track(48_000) };
        let mut run = Hints {
            seg: Segmenter::new(track, config(scale, segment_ms, part_ms, 6), None),
            video,
            hint: None,
            boundaries: 0,
            segments: 0,
        };
        let duration = |d: u32| if video { d } else { (d * 8 / 15).max(1) };
        let mut dts = 0u64;
        for (i, &(d, key)) in frames.iter().enumerate() {
            let d = duration(d);
            let sample = Sample {
                dts,
                cts_offset: 0,
                duration: d,
                keyframe: i == 0 || key,
                data: Bytes::from_static(b"frame"),
            };
            dts += u64::from(d);
            let next = frames.get(i + 1).map(|&(_, key)| Next { pts: dts, sync: key });
            run.step(sample, next)?;
        }
        let out = run.seg.finish();
        run.publish(out)?;
        // Every segment after the first was announced by a hint.
        prop_assert_eq!(run.boundaries, run.segments.saturating_sub(1));
    }
}

/// One stream as `media::live` runs it: one [`CutPlan`] led by the source's
/// keyframes (offered as they are demuxed), passed-through video whose decode
/// times come from [`DecodeTimes`] and which is held back one frame (so the
/// segmenter knows the next one), and AAC audio held until the plan's
/// watermark passes it. Both renditions follow the plan.
struct Pipeline {
    plan: CutPlan,
    decode: DecodeTimes,
    /// The video frame held back until the next one is known.
    pending: Option<Sample>,
    video: Hints,
    video_cursor: Cursor,
    audio: Hints,
    audio_cursor: Cursor,
    audio_scale: Timescale,
    /// Audio frames not yet packaged.
    held: std::collections::VecDeque<Sample>,
}

impl Pipeline {
    /// A demuxed video frame (decode order), presented at `pts` (90 kHz).
    fn video_frame(&mut self, pts: u64, keyframe: bool) -> Result<(), TestCaseError> {
        if keyframe {
            self.plan.offer(pts);
        } else {
            self.plan.seen(pts);
        }
        let sample = Sample {
            dts: pts,
            cts_offset: 0,
            duration: 0,
            keyframe,
            data: Bytes::from_static(b"frame"),
        };
        for s in self.decode.push(sample) {
            self.accept(s)?;
        }
        self.release_audio(false)
    }

    fn accept(&mut self, sample: Sample) -> Result<(), TestCaseError> {
        if let Some(mut prev) = self.pending.take() {
            prev.duration = u32::try_from(sample.dts - prev.dts).expect("duration");
            let next = Next {
                pts: sample
                    .dts
                    .saturating_add_signed(i64::from(sample.cts_offset)),
                sync: sample.keyframe,
            };
            self.push_video(prev, Some(next))?;
        }
        self.pending = Some(sample);
        Ok(())
    }

    fn push_video(&mut self, sample: Sample, next: Option<Next>) -> Result<(), TestCaseError> {
        for &cut in self.plan.take(&mut self.video_cursor) {
            self.video.seg.cut_at(cut);
        }
        self.video.step(sample, next)
    }

    /// An audio frame of 1024 samples decoded.
    fn audio_frame(&mut self, at: u64) -> Result<(), TestCaseError> {
        self.held.push_back(Sample {
            dts: at,
            cts_offset: 0,
            duration: 1024,
            keyframe: true,
            data: Bytes::from_static(b"aac"),
        });
        self.release_audio(false)
    }

    fn release_audio(&mut self, all: bool) -> Result<(), TestCaseError> {
        let watermark = self
            .plan
            .watermark()
            .map(|w| rescale(w, VIDEO_TIMESCALE, self.audio_scale));
        while let Some(front) = self.held.front() {
            let end = front.dts + u64::from(front.duration);
            if !(all || watermark.is_some_and(|w| end <= w)) {
                break;
            }
            let Some(sample) = self.held.pop_front() else {
                break;
            };
            for &cut in self.plan.take(&mut self.audio_cursor) {
                self.audio
                    .seg
                    .cut_at(rescale(cut, VIDEO_TIMESCALE, self.audio_scale));
            }
            self.audio.step(sample, None)?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), TestCaseError> {
        for s in self.decode.flush() {
            self.accept(s)?;
        }
        if let Some(last) = self.pending.take().map(|mut s| {
            s.duration = 3000;
            s
        }) {
            self.push_video(last, None)?;
        }
        let out = self.video.seg.finish();
        self.video.publish(out)?;
        self.release_audio(true)?;
        let out = self.audio.seg.finish();
        self.audio.publish(out)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The pipeline's own set-up ([`Pipeline`]): H.264 with up to three
    /// B-frames between references (presentation order differs from decode
    /// order), irregular GOPs, audio up to 100 ms ahead of or behind the
    /// video. Every preload hint either rendition publishes names the part
    /// it publishes next, and every segment after the first was hinted
    /// (rfc8216bis 4.4.5.3).
    #[test]
    fn followers_of_a_b_frame_source_hint_the_part_that_comes_next(
        gops in proptest::collection::vec(1usize..120, 1..10),
        b_frames in 0usize..4,
        interval in prop_oneof![Just(1500u64), Just(3000), Just(3003), Just(3600)],
        part_ms in 100u64..1000,
        segment_ms in 500u64..4000,
        audio_lead_ms in -100i64..100,
    ) {
        let audio_scale = Timescale::new(48_000).expect("rate");
        let follower = |track: Track, scale: Timescale| {
            let mut seg = Segmenter::new(track, config(scale, segment_ms, part_ms, 6), None);
            seg.follow_cuts();
            Hints { seg, video: false, hint: None, boundaries: 0, segments: 0 }
        };
        let mut video = follower(avc_track(1280, 720, 0x1f), VIDEO_TIMESCALE);
        video.video = true;
        let mut p = Pipeline {
            plan: CutPlan::new(rescale(segment_ms, MILLIS, VIDEO_TIMESCALE)),
            decode: DecodeTimes::new(b_frames as u32, Some(interval), 0),
            pending: None,
            video,
            video_cursor: Cursor::default(),
            audio: follower(aac_track(48_000), audio_scale),
            audio_cursor: Cursor::default(),
            audio_scale,
            held: std::collections::VecDeque::new(),
        };
        // Video in decode order: each GOP opens with its keyframe, then
        // groups of B-frames, each decoded after the reference presented
        // after them (closed GOPs, as x264 makes them).
        let lead = 6000u64; // room before the first frame, 90 kHz
        let mut frames: Vec<(u64, bool)> = Vec::new();
        let mut n = 0u64;
        for &len in &gops {
            let pts = |i: u64| lead + (n + i) * interval;
            frames.push((pts(0), true));
            let mut i = 1u64;
            while i < len as u64 {
                let group = (b_frames as u64 + 1).min(len as u64 - i);
                frames.push((pts(i + group - 1), false));
                for b in 0..group - 1 {
                    frames.push((pts(i + b), false));
                }
                i += group;
            }
            n += len as u64;
        }
        // Packets arrive in decode order, one frame interval apart; audio
        // frames (1024 samples at 48 kHz) by their time, shifted by the lead.
        let end = lead + n * interval;
        let mut audio_at = 0u64;
        let audio_arrival = |at: u64| rescale(at, audio_scale, VIDEO_TIMESCALE) as i64 - audio_lead_ms * 90;
        for (i, &(pts, key)) in frames.iter().enumerate() {
            let arrival = (i as u64 * interval) as i64;
            while audio_arrival(audio_at) <= arrival {
                p.audio_frame(audio_at)?;
                audio_at += 1024;
            }
            p.video_frame(pts, key)?;
        }
        while rescale(audio_at, audio_scale, VIDEO_TIMESCALE) < end {
            p.audio_frame(audio_at)?;
            audio_at += 1024;
        }
        p.finish()?;
        prop_assert_eq!(p.video.seg.own_cuts(), 0);
        for run in [&p.video, &p.audio] {
            prop_assert_eq!(run.boundaries, run.segments.saturating_sub(1));
        }
        prop_assert_eq!(p.video.segments, p.audio.segments);
    }
}
