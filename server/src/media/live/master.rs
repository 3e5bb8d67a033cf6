//! The master playlist: published once every rendition has a segment, and
//! again when a completed segment changes a measured bandwidth.

use super::rungs::Transcode;
use super::video::VideoState;
use super::{Pipeline, AUDIO_RENDITION};
use crate::packager::fmp4::Codec;
use crate::packager::framerate;
use crate::packager::playlist::{
    render_master, render_master_with, AudioRendition, SubtitleRendition, Variant,
};
use crate::packager::segmenter::Segmenter;
use crate::packager::webvtt::SUBTITLES_RENDITION;

/// A rendition waits this many segments of another rendition for its own
/// first segment before the master playlist is published without it.
pub(super) const MASTER_WAIT_SEGMENTS: u64 = 4;

impl Pipeline<'_> {
    /// Publishes the master playlist once every rendition has a complete
    /// segment (a player that opens it finds whole segments everywhere and
    /// every variant it will ever have), and again when a completed segment
    /// changes the measured bandwidth. A rendition that has no segment while
    /// another has [`MASTER_WAIT_SEGMENTS`] is left out until it has one; at
    /// the end (`force`) the master lists whatever has a segment.
    pub(super) fn refresh_master(&mut self, force: bool) {
        let completed = self.ctx.completed.get();
        if self.master.is_some() && !force && completed == self.completed_seen {
            return;
        }
        let done = |s: Option<&Segmenter>| s.map(|s| s.segments_completed()).unwrap_or(0);
        // Every rendition the stream will have: how many segments each completed.
        let mut renditions: Vec<u64> = Vec::new();
        if let Some(v) = &self.video {
            renditions.push(done(v.segmenter.as_ref()));
        }
        if let Some(t) = self.transcode.as_ref().filter(|t| !t.disabled) {
            if t.ladder.is_none() {
                renditions.push(0);
            }
            renditions.extend(t.outs.iter().map(|o| done(o.segmenter.as_ref())));
        }
        if let Some(a) = &self.audio {
            renditions.push(a.segmenter.segments_completed());
        }
        let most = renditions.iter().copied().max().unwrap_or(0);
        let all = renditions.iter().all(|&n| n > 0);
        if most == 0 || !(all || force || most >= MASTER_WAIT_SEGMENTS) {
            return;
        }
        self.completed_seen = completed;
        let outputs: Vec<&VideoState> = outputs(self.video.as_ref(), self.transcode.as_ref())
            .into_iter()
            .filter(|v| done(v.segmenter.as_ref()) > 0)
            .collect();
        let audio = self
            .audio
            .as_ref()
            .map(|a| &a.segmenter)
            .filter(|s| s.segments_completed() > 0);
        let text = master(&outputs, audio, self.ctx.captions);
        if self.master.as_ref() != Some(&text) {
            self.ctx.sink.borrow_mut().master(text.clone());
            self.master = Some(text);
        }
    }
}

/// Every video output that has started, highest first.
pub(super) fn outputs<'a>(
    video: Option<&'a VideoState>,
    transcode: Option<&'a Transcode>,
) -> Vec<&'a VideoState> {
    let mut all: Vec<&VideoState> = video
        .into_iter()
        .chain(transcode.into_iter().flat_map(|t| t.outs.iter()))
        .filter(|v| v.segmenter.is_some())
        .collect();
    all.sort_by_key(|v| {
        std::cmp::Reverse(v.segmenter.as_ref().map(|s| match &s.track().codec {
            Codec::Avc { info, .. } => info.height,
            Codec::Aac { .. } => 0,
        }))
    });
    all
}

/// The master playlist for the renditions running now. `BANDWIDTH` and
/// `AVERAGE-BANDWIDTH` are measured over the segments in each window (video
/// plus audio); before a rendition's first segment completes they are the
/// encoder target or, for passthrough, an estimate from the picture size.
pub(super) fn master(videos: &[&VideoState], audio: Option<&Segmenter>, captions: bool) -> String {
    let audio_codec = "mp4a.40.2";
    let audio_bw = audio.map(|a| a.measured_bitrate().unwrap_or((160_000, 128_000)));
    let rendition = audio.map(|_| AudioRendition {
        uri: format!("{AUDIO_RENDITION}/index.m3u8"),
        name: "Audio".into(),
    });
    let (audio_peak, audio_avg) = audio_bw.unwrap_or((0, 0));
    let mut variants: Vec<Variant> = videos
        .iter()
        .filter_map(|v| {
            let seg = v.segmenter.as_ref()?;
            let Codec::Avc { info, .. } = &seg.track().codec else {
                return None;
            };
            let (peak, avg) = seg.measured_bitrate().unwrap_or_else(|| {
                let pixels = u64::from(info.width) * u64::from(info.height);
                let target = v
                    .bitrate
                    .unwrap_or_else(|| (pixels * 3).clamp(300_000, 8_000_000));
                (target, target * 4 / 5)
            });
            let codecs = if audio.is_some() {
                format!("{},{audio_codec}", info.codec_string())
            } else {
                info.codec_string()
            };
            Some(Variant {
                uri: format!("{}/index.m3u8", v.name),
                bandwidth: peak + audio_peak,
                average_bandwidth: avg + audio_avg,
                codecs,
                resolution: Some((info.width, info.height)),
                // Measured once a segment is complete (every rung, encoded
                // ones too); before, a standard rate the container declares
                // (not an estimate such as 1000/33 from millisecond timestamps).
                frame_rate: seg
                    .frame_rate()
                    .or(v.fps.filter(|&f| framerate::is_standard(f))),
            })
        })
        .collect();
    if variants.is_empty() {
        // Audio only: the audio playlist is the variant.
        variants.push(Variant {
            uri: format!("{AUDIO_RENDITION}/index.m3u8"),
            bandwidth: audio_peak.max(1),
            average_bandwidth: audio_avg.max(1),
            codecs: audio_codec.into(),
            resolution: None,
            frame_rate: None,
        });
        return render_master(&variants, None);
    }
    let subtitles = captions.then(|| SubtitleRendition {
        uri: format!("{SUBTITLES_RENDITION}/index.m3u8"),
        name: "Captions (auto)".into(),
        language: None,
    });
    render_master_with(&variants, rendition.as_ref(), subtitles.as_ref())
}
