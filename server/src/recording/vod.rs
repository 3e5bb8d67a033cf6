//! VOD playlists from the catalog, sans IO: [`plan`] takes the catalog rows
//! and the names of the objects that are really in the store, and decides
//! what each rendition's playlist lists; [`render_media`] and
//! [`render_master`] turn the plan into text.
//!
//! A segment is listed only if its object and its init segment are in the
//! store. Where the listing jumps (a sequence number that never reached the
//! store, another session's init segment, or a new period), the playlist
//! says `EXT-X-DISCONTINUITY`, and `EXT-X-MAP` where the init segment changes.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use crate::db::recordings::{RenditionRow, SegmentRow};
use crate::packager::playlist::{self, format_pdt, AudioRendition, SubtitleRendition, Variant};
use crate::packager::time::{MediaTime, Timescale};
use crate::packager::webvtt::{render_playlist, SegmentSpan, SUBTITLES_RENDITION, VTT_HEADER};
use app::transcripts::{vtt_cue, TranscriptLine};

/// One listed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodSegment {
    /// Media sequence number (its file is `<msn>.m4s`).
    pub msn: u64,
    /// Its duration.
    pub duration: MediaTime,
    /// Wall-clock time of its first sample, Unix ms.
    pub pdt_ms: Option<i64>,
    /// `EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    /// The init segment it uses.
    pub init: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What kind of media a rendition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// H.264 video (with the audio group when there is audio).
    Video,
    /// AAC audio.
    Audio,
}

/// One rendition's VOD playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodRendition {
    /// Its name and directory.
    pub name: String,
    /// Video or audio.
    pub kind: Kind,
    /// RFC 6381 codec string.
    pub codecs: String,
    /// Picture size (video).
    pub resolution: Option<(u32, u32)>,
    /// Frame rate (video, when known).
    pub frame_rate: Option<(u32, u32)>,
    /// Listed segments, in order.
    pub segments: Vec<VodSegment>,
}

impl VodRendition {
    /// Total duration of the listed segments, ms.
    pub fn duration_ms(&self) -> u64 {
        self.segments.iter().map(|s| s.duration.as_millis()).sum()
    }

    /// Total bytes of the listed segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// `EXT-X-DISCONTINUITY` tags in the playlist.
    pub fn discontinuities(&self) -> usize {
        self.segments.iter().filter(|s| s.discontinuity).count()
    }

    /// Every init segment the playlist names, in order of first use.
    pub fn inits(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.segments {
            if out.last() != Some(&s.init.as_str()) && !out.contains(&s.init.as_str()) {
                out.push(&s.init);
            }
        }
        out
    }

    /// Peak and average bits per second over the segments.
    pub fn bitrate(&self) -> (u64, u64) {
        let bps = |bytes: u64, ms: u64| bytes.saturating_mul(8_000) / ms.max(1);
        let peak = self
            .segments
            .iter()
            .map(|s| bps(s.size, s.duration.as_millis()))
            .max()
            .unwrap_or(0);
        (peak, bps(self.bytes(), self.duration_ms()))
    }

    fn height(&self) -> u32 {
        self.resolution.map(|r| r.1).unwrap_or(0)
    }
}

/// What a recording lists, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VodPlan {
    /// Renditions with at least one listed segment: video highest first, then audio.
    pub renditions: Vec<VodRendition>,
    /// Catalog rows whose segment (or init segment) is not in the store.
    pub missing: usize,
}

impl VodPlan {
    /// The video rendition with the most pixels, else the audio.
    pub fn top(&self) -> Option<&VodRendition> {
        self.renditions
            .iter()
            .find(|r| r.kind == Kind::Video)
            .or_else(|| self.renditions.first())
    }

    /// The audio rendition, if any.
    pub fn audio(&self) -> Option<&VodRendition> {
        self.renditions.iter().find(|r| r.kind == Kind::Audio)
    }

    /// The recording's duration: its top rendition's, ms.
    pub fn duration_ms(&self) -> u64 {
        self.top().map(VodRendition::duration_ms).unwrap_or(0)
    }
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Plans the VOD playlists. `stored` holds the names of the stream's objects
/// relative to its prefix (`720p/12.m4s`, `audio/init.mp4`).
pub fn plan(
    renditions: &[RenditionRow],
    segments: &[SegmentRow],
    stored: &HashSet<String>,
) -> VodPlan {
    let mut by_rendition: BTreeMap<&str, Vec<&SegmentRow>> = BTreeMap::new();
    for s in segments {
        by_rendition
            .entry(s.rendition.as_str())
            .or_default()
            .push(s);
    }
    let mut out = VodPlan::default();
    for info in renditions {
        let Some(rows) = by_rendition.get_mut(info.name.as_str()) else {
            continue;
        };
        rows.sort_by_key(|r| r.msn);
        rows.dedup_by_key(|r| r.msn);
        let mut listed: Vec<VodSegment> = Vec::with_capacity(rows.len());
        for row in rows.iter() {
            let present = stored.contains(&format!("{}/{}.m4s", info.name, row.msn))
                && stored.contains(&format!("{}/{}", info.name, row.init));
            let scale = u32::try_from(row.timescale).ok().and_then(Timescale::new);
            let (true, Some(scale), true) = (present, scale, row.duration > 0) else {
                out.missing += 1;
                continue;
            };
            let msn = unsigned(row.msn);
            let jump = listed
                .last()
                .is_some_and(|p| p.msn + 1 != msn || p.init != row.init);
            listed.push(VodSegment {
                msn,
                duration: MediaTime::new(unsigned(row.duration), scale),
                pdt_ms: row.pdt_ms,
                discontinuity: !listed.is_empty() && (row.discontinuity || jump),
                init: row.init.clone(),
                size: unsigned(row.size),
            });
        }
        if listed.is_empty() {
            continue;
        }
        let dim = |v: Option<i64>| v.and_then(|x| u32::try_from(x).ok());
        out.renditions.push(VodRendition {
            name: info.name.clone(),
            kind: if info.kind == "audio" {
                Kind::Audio
            } else {
                Kind::Video
            },
            codecs: info.codecs.clone(),
            resolution: dim(info.width).zip(dim(info.height)),
            frame_rate: dim(info.fps_num).zip(dim(info.fps_den)),
            segments: listed,
        });
    }
    // Segments of renditions the catalog does not describe cannot be listed.
    for (name, rows) in &by_rendition {
        if !renditions.iter().any(|r| r.name == *name) {
            out.missing += rows.len();
        }
    }
    out.renditions.sort_by_key(|r| {
        (
            r.kind == Kind::Audio,
            std::cmp::Reverse(r.height()),
            r.name.clone(),
        )
    });
    out
}

/// A rendition's VOD media playlist.
pub fn render_media(r: &VodRendition) -> String {
    let target = r
        .segments
        .iter()
        .map(|s| s.duration.ceil_seconds())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::with_capacity(256 + r.segments.len() * 64);
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:7");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(
        out,
        "#EXT-X-MEDIA-SEQUENCE:{}",
        r.segments.first().map(|s| s.msn).unwrap_or(0)
    );
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(out, "#EXT-X-INDEPENDENT-SEGMENTS");
    let mut init: Option<&str> = None;
    for (i, s) in r.segments.iter().enumerate() {
        if s.discontinuity {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY");
        }
        if init != Some(s.init.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", s.init);
            init = Some(&s.init);
        }
        if let (true, Some(ms)) = (i == 0 || s.discontinuity, s.pdt_ms) {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(ms));
        }
        let _ = writeln!(out, "#EXTINF:{},", extinf(s.duration));
        let _ = writeln!(out, "{}", playlist::segment_uri(s.msn));
    }
    let _ = writeln!(out, "#EXT-X-ENDLIST");
    out
}

/// Seconds with microsecond precision, so the listed durations add up.
fn extinf(d: MediaTime) -> String {
    let us = u128::from(d.ticks) * 1_000_000 / u128::from(d.scale.get());
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The VOD master playlist: the same relative layout as live
/// (`<rendition>/index.m3u8`), bandwidths measured over the whole recording.
/// With `captions`, it lists the `subs/index.m3u8` subtitles rendition.
pub fn render_master(plan: &VodPlan, captions: bool) -> String {
    let audio = plan.audio();
    let (audio_peak, audio_avg) = audio.map(VodRendition::bitrate).unwrap_or((0, 0));
    let videos: Vec<&VodRendition> = plan
        .renditions
        .iter()
        .filter(|r| r.kind == Kind::Video)
        .collect();
    if videos.is_empty() {
        let Some(a) = audio else {
            return "#EXTM3U\n".to_string();
        };
        let v = Variant {
            uri: format!("{}/index.m3u8", a.name),
            bandwidth: audio_peak.max(1),
            average_bandwidth: audio_avg.max(1),
            codecs: a.codecs.clone(),
            resolution: None,
            frame_rate: None,
        };
        return playlist::render_master(&[v], None);
    }
    let subtitles = captions.then(|| SubtitleRendition {
        uri: format!("{SUBTITLES_RENDITION}/index.m3u8"),
        name: "Captions (auto)".into(),
        language: None,
    });
    let variants: Vec<Variant> = videos
        .iter()
        .map(|v| {
            let (peak, avg) = v.bitrate();
            Variant {
                uri: format!("{}/index.m3u8", v.name),
                bandwidth: (peak + audio_peak).max(1),
                average_bandwidth: (avg + audio_avg).max(1),
                codecs: match audio {
                    Some(a) => format!("{},{}", v.codecs, a.codecs),
                    None => v.codecs.clone(),
                },
                resolution: v.resolution,
                frame_rate: v.frame_rate,
            }
        })
        .collect();
    let group = audio.map(|a| AudioRendition {
        uri: format!("{}/index.m3u8", a.name),
        name: "Audio".into(),
    });
    playlist::render_master_with(&variants, group.as_ref(), subtitles.as_ref())
}

/// The recording's captions: one WebVTT file covering `duration_ms`, and its
/// playlist. Cue times are the media timeline (`X-TIMESTAMP-MAP=MPEGTS:0`),
/// like the live rendition's.
pub fn render_captions(lines: &[TranscriptLine], duration_ms: u64) -> (String, String) {
    let span = SegmentSpan {
        msn: 0,
        start_ms: 0,
        duration_ms: duration_ms.max(1),
        program_date_time_ms: None,
        discontinuity: false,
    };
    let mut vtt = String::from(VTT_HEADER);
    for l in lines {
        vtt_cue(&mut vtt, l);
    }
    let playlist = render_playlist(std::iter::once(&span), 0, true, |_| {
        super::VOD_CAPTIONS_FILE.to_string()
    });
    (
        playlist.replacen(
            "#EXT-X-VERSION:6\n",
            "#EXT-X-VERSION:6\n#EXT-X-PLAYLIST-TYPE:VOD\n",
            1,
        ),
        vtt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendition(name: &str, kind: &str, height: i64) -> RenditionRow {
        RenditionRow {
            stream: "s".into(),
            name: name.into(),
            kind: kind.into(),
            codecs: if kind == "audio" {
                "mp4a.40.2".into()
            } else {
                "avc1.64001f".into()
            },
            width: (kind == "video").then_some(height * 16 / 9),
            height: (kind == "video").then_some(height),
            fps_num: (kind == "video").then_some(30),
            fps_den: (kind == "video").then_some(1),
        }
    }

    fn row(r: &str, msn: i64, init: &str, discontinuity: bool) -> SegmentRow {
        SegmentRow {
            stream: "s".into(),
            rendition: r.into(),
            msn,
            duration: 180_000,
            timescale: 90_000,
            pdt_ms: Some(1_700_000_000_000 + msn * 2000),
            discontinuity,
            init: init.into(),
            size: 250_000,
        }
    }

    fn stored(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_complete_recording_lists_every_segment_and_ends() {
        let renditions = [
            rendition("720p", "video", 720),
            rendition("audio", "audio", 0),
        ];
        let mut rows = Vec::new();
        let mut names = vec!["720p/init.mp4".to_string(), "audio/init.mp4".to_string()];
        for msn in 0..5 {
            rows.push(row("720p", msn, "init.mp4", false));
            let mut a = row("audio", msn, "init.mp4", false);
            a.timescale = 48_000;
            a.duration = 96_000;
            a.size = 32_000;
            rows.push(a);
            names.push(format!("720p/{msn}.m4s"));
            names.push(format!("audio/{msn}.m4s"));
        }
        let set: HashSet<String> = names.into_iter().collect();
        let p = plan(&renditions, &rows, &set);
        assert_eq!(p.missing, 0);
        assert_eq!(p.renditions.len(), 2);
        assert_eq!(p.top().map(|r| r.name.as_str()), Some("720p"));
        assert_eq!(p.duration_ms(), 10_000);
        let text = render_media(&p.renditions[0]);
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
        assert_eq!(text.matches("#EXTINF:2.000000,").count(), 5, "{text}");
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
        assert!(!text.contains("DISCONTINUITY"), "{text}");
        assert!(!text.contains("PART"), "no LL tags in a VOD: {text}");
        let master = render_master(&p, false);
        assert!(
            master.contains("CODECS=\"avc1.64001f,mp4a.40.2\""),
            "{master}"
        );
        assert!(master.contains("RESOLUTION=1280x720"), "{master}");
        // 250 kB per 2 s of video plus 32 kB per 2 s of audio.
        assert!(master.contains("AVERAGE-BANDWIDTH=1128000"), "{master}");
        assert!(master.contains("audio/index.m3u8"), "{master}");
    }

    #[test]
    fn gaps_sessions_and_periods_become_discontinuities() {
        let renditions = [rendition("720p", "video", 720)];
        let rows = vec![
            row("720p", 0, "init.mp4", false),
            row("720p", 1, "init.mp4", false),
            // 2 never reached the store
            row("720p", 2, "init.mp4", false),
            row("720p", 3, "init.mp4", false),
            // a recorder restart with new parameters
            row("720p", 4, "init-1.mp4", true),
            // a later session
            row("720p", 5, "init-5-0.mp4", false),
        ];
        let set = stored(&[
            "720p/init.mp4",
            "720p/init-1.mp4",
            "720p/init-5-0.mp4",
            "720p/0.m4s",
            "720p/1.m4s",
            "720p/3.m4s",
            "720p/4.m4s",
            "720p/5.m4s",
        ]);
        let p = plan(&renditions, &rows, &set);
        assert_eq!(p.missing, 1);
        let r = &p.renditions[0];
        let flags: Vec<(u64, bool)> = r
            .segments
            .iter()
            .map(|s| (s.msn, s.discontinuity))
            .collect();
        assert_eq!(
            flags,
            vec![(0, false), (1, false), (3, true), (4, true), (5, true)]
        );
        assert_eq!(r.inits(), vec!["init.mp4", "init-1.mp4", "init-5-0.mp4"]);
        let text = render_media(r);
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 3, "{text}");
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-1.mp4\"\n"),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-5-0.mp4\"\n"),
            "{text}"
        );
        // The date is restated after each discontinuity.
        assert_eq!(
            text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
            4,
            "{text}"
        );
    }

    #[test]
    fn nothing_stored_means_nothing_listed() {
        let renditions = [rendition("720p", "video", 720)];
        let rows = vec![row("720p", 0, "init.mp4", false)];
        // The segment is there but not its init segment.
        let p = plan(&renditions, &rows, &stored(&["720p/0.m4s"]));
        assert!(p.renditions.is_empty());
        assert_eq!(p.missing, 1);
        assert_eq!(p.duration_ms(), 0);
        // Rows of a rendition the catalog never described are counted missing.
        let p = plan(&[], &rows, &stored(&["720p/0.m4s", "720p/init.mp4"]));
        assert_eq!(p.missing, 1);
    }

    #[test]
    fn extinf_adds_up_exactly() {
        assert_eq!(
            extinf(MediaTime::new(
                180_000,
                crate::packager::time::VIDEO_TIMESCALE
            )),
            "2.000000"
        );
        let aac = Timescale::new(48_000).expect("scale");
        assert_eq!(extinf(MediaTime::new(1024, aac)), "0.021333");
    }
}
