//! Stream health, measured from the input: the pipeline reports each
//! demuxed packet (its timestamp in ms, size and keyframe flag) and each
//! period's codecs; the ingest side reports the protocol and reconnects.
//! The owner reads a snapshot ([`HealthMeter::snapshot`]) through
//! `GET /api/v1/streams/{id}/health`. Sans IO: time is the packets' own.

use std::collections::VecDeque;
use std::sync::Mutex;

use app::health::{AudioHealth, StreamHealth, VideoHealth, WINDOW_MS};

/// What the input's video is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInput {
    /// FFmpeg's codec name.
    pub codec: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
}

/// Keyframe intervals kept (the latest is reported).
const KEYFRAMES_KEPT: usize = 8;

#[derive(Debug, Default)]
struct Meter {
    protocol: Option<&'static str>,
    reconnects: u64,
    video: Option<VideoInput>,
    audio: Option<AudioHealth>,
    /// (pts ms, bytes) of every packet in the last [`WINDOW_MS`] of media.
    packets: VecDeque<(i64, u64)>,
    /// Video frames' pts (ms) in the window.
    frames: VecDeque<i64>,
    last_key_ms: Option<i64>,
    key_intervals: VecDeque<u64>,
}

impl Meter {
    fn trim(&mut self) {
        let newest = self.packets.iter().map(|p| p.0).max().unwrap_or(0);
        while self
            .packets
            .front()
            .is_some_and(|p| newest.saturating_sub(p.0) > WINDOW_MS)
        {
            self.packets.pop_front();
        }
        let newest = self.frames.back().copied().unwrap_or(0);
        while self
            .frames
            .front()
            .is_some_and(|&f| newest.saturating_sub(f) > WINDOW_MS)
        {
            self.frames.pop_front();
        }
    }

    fn bitrate(&self) -> Option<u64> {
        let first = self.packets.iter().map(|p| p.0).min()?;
        let last = self.packets.iter().map(|p| p.0).max()?;
        let span = u64::try_from(last.saturating_sub(first)).ok()?;
        // Under half a second says little.
        if span < 500 {
            return None;
        }
        let bytes = self.packets.iter().fold(0u64, |n, p| n.saturating_add(p.1));
        Some(bytes.saturating_mul(8_000) / span)
    }

    /// Frames per 100 s, from the frames in the window (in presentation
    /// order: B-frames arrive out of order).
    fn frame_rate_x100(&self) -> Option<u32> {
        let first = self.frames.iter().min()?;
        let last = self.frames.iter().max()?;
        let span = u64::try_from(last.saturating_sub(*first)).ok()?;
        if span < 500 || self.frames.len() < 2 {
            return None;
        }
        let intervals = self.frames.len() as u64 - 1;
        u32::try_from(intervals.saturating_mul(100_000).saturating_add(span / 2) / span).ok()
    }
}

/// One live session's measurements, shared by its ingest and its pipeline.
#[derive(Debug, Default)]
pub struct HealthMeter(Mutex<Meter>);

impl HealthMeter {
    fn with<T>(&self, f: impl FnOnce(&mut Meter) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// How the media arrives (`rtmp`, `websocket`).
    pub fn set_protocol(&self, protocol: &'static str) {
        self.with(|m| m.protocol = Some(protocol));
    }

    /// The publisher came back within the resume grace.
    pub fn reconnected(&self) {
        self.with(|m| m.reconnects += 1);
    }

    /// This period's video (`None`: it has none).
    pub fn set_video(&self, video: Option<VideoInput>) {
        self.with(|m| m.video = video);
    }

    /// This period's audio.
    pub fn set_audio(&self, audio: Option<AudioHealth>) {
        self.with(|m| m.audio = audio);
    }

    /// A new period: its timestamps start again.
    pub fn new_period(&self) {
        self.with(|m| {
            m.packets.clear();
            m.frames.clear();
            m.last_key_ms = None;
        });
    }

    /// A demuxed packet of `bytes` at `pts_ms`; `video` with its keyframe flag.
    pub fn packet(&self, pts_ms: i64, bytes: usize, video: Option<bool>) {
        self.with(|m| {
            m.packets
                .push_back((pts_ms, u64::try_from(bytes).unwrap_or(u64::MAX)));
            if let Some(key) = video {
                m.frames.push_back(pts_ms);
                if key {
                    if let Some(prev) = m.last_key_ms.filter(|&p| pts_ms > p) {
                        let gap = pts_ms.checked_sub(prev).and_then(|g| u64::try_from(g).ok());
                        m.key_intervals.push_back(gap.unwrap_or(u64::MAX));
                        if m.key_intervals.len() > KEYFRAMES_KEPT {
                            m.key_intervals.pop_front();
                        }
                    }
                    m.last_key_ms = Some(pts_ms);
                }
            }
            m.trim();
        });
    }

    /// What was measured (without warnings, which depend on the server's limits).
    pub fn snapshot(&self) -> StreamHealth {
        self.with(|m| StreamHealth {
            live: true,
            protocol: m.protocol.map(str::to_string),
            video: m.video.as_ref().map(|v| VideoHealth {
                codec: v.codec.clone(),
                width: v.width,
                height: v.height,
                frame_rate_x100: m.frame_rate_x100(),
                keyframe_interval_ms: m.key_intervals.back().copied(),
            }),
            audio: m.audio.clone(),
            bitrate_bps: m.bitrate(),
            reconnects: m.reconnects,
            warnings: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_rate_keyframes_and_bitrate_from_the_packets() {
        let h = HealthMeter::default();
        h.set_protocol("rtmp");
        h.set_video(Some(VideoInput {
            codec: "h264".into(),
            width: 1280,
            height: 720,
        }));
        // 10 s at 30 fps (ms timestamps, as FLV has them), a keyframe every
        // 2.5 s, 10,000 bytes a frame: 2.4 Mbit/s.
        for n in 0..300i64 {
            let pts = n * 1000 / 30;
            h.packet(pts, 10_000, Some(n % 75 == 0));
        }
        let s = h.snapshot();
        let v = s.video.expect("video");
        assert_eq!(v.keyframe_interval_ms, Some(2500));
        assert_eq!(v.frame_rate_x100, Some(3000));
        let bps = s.bitrate_bps.expect("bitrate");
        assert!(bps.abs_diff(2_400_000) < 20_000, "{bps}");
        assert_eq!(s.protocol.as_deref(), Some("rtmp"));
        // A new period forgets the old timestamps.
        h.new_period();
        h.reconnected();
        let s = h.snapshot();
        assert_eq!(s.bitrate_bps, None);
        assert_eq!(s.reconnects, 1);
        assert_eq!(s.video.expect("video").keyframe_interval_ms, Some(2500));
    }

    #[test]
    fn hostile_timestamps_do_not_overflow() {
        let h = HealthMeter::default();
        h.set_video(Some(VideoInput {
            codec: "h264".into(),
            width: 2,
            height: 2,
        }));
        for pts in [i64::MIN, i64::MAX, 0, -5, i64::MAX - 1, 7] {
            h.packet(pts, usize::MAX, Some(true));
        }
        let _ = h.snapshot();
    }
}
