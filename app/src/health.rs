//! Stream health: what the server measures of a live stream's input
//! (`GET /api/v1/streams/{id}/health`, owner or admin), the warnings it
//! gives, and the server function the "Stream health" panel polls.
//!
//! Every value is an integer measured from the input itself: the frames'
//! and packets' own timestamps and sizes over the last few seconds of media,
//! whatever sent them (the browser studio, `onair publish`, or an RTMP
//! encoder).

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// A live stream's input, as measured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHealth {
    /// Media is arriving (a live session is running on this server).
    pub live: bool,
    /// How it arrives: `rtmp`, `rtmps`, `srt`, or `websocket` (the studio and `onair publish`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The input's video, if it has any.
    #[serde(default)]
    pub video: Option<VideoHealth>,
    /// The input's audio, if it has any.
    #[serde(default)]
    pub audio: Option<AudioHealth>,
    /// Input bitrate (audio and video packets), bits per second, over the
    /// last [`WINDOW_MS`] of media.
    #[serde(default)]
    pub bitrate_bps: Option<u64>,
    /// Times the publisher dropped and came back within the resume grace
    /// (each one is a new period of the same stream).
    #[serde(default)]
    pub reconnects: u64,
    /// What the broadcaster should change, if anything.
    #[serde(default)]
    pub warnings: Vec<HealthWarning>,
}

/// The input's video.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoHealth {
    /// FFmpeg's codec name (`h264`, `vp8`, …).
    pub codec: String,
    /// Picture width, pixels.
    pub width: u32,
    /// Picture height, pixels.
    pub height: u32,
    /// Frames per 100 seconds (2997 = 29.97 fps), measured.
    #[serde(default)]
    pub frame_rate_x100: Option<u32>,
    /// Time between the last two keyframes, milliseconds.
    #[serde(default)]
    pub keyframe_interval_ms: Option<u64>,
}

/// The input's audio.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioHealth {
    /// FFmpeg's codec name (`aac`, `opus`, …).
    pub codec: String,
    /// Sampling frequency, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// The source's AAC is copied into the stream (else it is encoded to AAC).
    pub copied: bool,
}

/// Something the broadcaster should change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthWarning {
    /// Stable code: `keyframe_interval` or `bitrate`.
    pub code: String,
    /// What to change, in words.
    pub message: String,
}

/// The span of media the bitrate and frame rate are measured over, ms.
pub const WINDOW_MS: i64 = 5_000;

/// Keyframes further apart than this are too far for low latency: a
/// segment can only start at a keyframe.
pub const MAX_KEYFRAME_INTERVAL_MS: u64 = 2_000;

/// The bitrate (kbit/s) the ladder is made for at a picture `height`: the
/// encoder settings the "Encoder (OBS)" panel recommends.
pub fn recommended_kbps(height: u32) -> u64 {
    let table = crate::streams::RECOMMENDED_ENCODER;
    let pick = |name: &str| {
        table
            .iter()
            .find(|(r, _)| r.starts_with(name))
            .map(|(_, k)| u64::from(*k))
            .unwrap_or(3000)
    };
    if height > 720 {
        pick("1080p")
    } else if height > 480 {
        pick("720p")
    } else {
        pick("480p")
    }
}

/// The warnings for `h`: keyframes more than [`MAX_KEYFRAME_INTERVAL_MS`]
/// apart; a bitrate over twice what the ladder is made for at that height,
/// or over 80% of the server's ingest limit (`max_bitrate`, bits per second),
/// above which the server refuses the stream.
pub fn warnings(h: &StreamHealth, max_bitrate: u64) -> Vec<HealthWarning> {
    let mut out = Vec::new();
    if let Some(ms) = h.video.as_ref().and_then(|v| v.keyframe_interval_ms) {
        if ms > MAX_KEYFRAME_INTERVAL_MS {
            out.push(HealthWarning {
                code: "keyframe_interval".into(),
                message: format!(
                    "Keyframes come every {}: low latency needs one at least every {} s. Set the encoder's keyframe interval to 1 s.",
                    seconds(ms),
                    MAX_KEYFRAME_INTERVAL_MS / 1000
                ),
            });
        }
    }
    if let Some(bps) = h.bitrate_bps {
        let ladder = h
            .video
            .as_ref()
            .map(|v| recommended_kbps(v.height) * 1000 * 2);
        let near_limit = max_bitrate > 0 && bps.saturating_mul(10) > max_bitrate.saturating_mul(8);
        if near_limit {
            out.push(HealthWarning {
                code: "bitrate".into(),
                message: format!(
                    "The input runs at {}, close to this server's limit of {}: lower the encoder's bitrate or the stream will be cut off.",
                    kbps(bps),
                    kbps(max_bitrate)
                ),
            });
        } else if let Some(ladder) = ladder.filter(|&l| bps > l) {
            out.push(HealthWarning {
                code: "bitrate".into(),
                message: format!(
                    "The input runs at {}, more than twice what the stream is made for at this size ({}): viewers on slower links will stall. Lower the encoder's bitrate.",
                    kbps(bps),
                    kbps(ladder / 2)
                ),
            });
        }
    }
    out
}

/// A one-word judgement of a live input, for a streamer at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to change.
    Excellent,
    /// Watchable; something could be better (the reason says what).
    Ok,
    /// Viewers will notice.
    Poor,
}

impl Verdict {
    /// The word shown.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Excellent => "Excellent",
            Verdict::Ok => "OK",
            Verdict::Poor => "Poor",
        }
    }
}

/// Below this many frames per 100 s the picture is poor (15 fps).
pub const POOR_FRAME_RATE_X100: u32 = 1500;
/// Below this many frames per 100 s motion is not smooth (24 fps).
pub const SMOOTH_FRAME_RATE_X100: u32 = 2400;

/// The verdict on a live input and its reason: poor without video, under
/// 15 fps, with keyframes more than twice [`MAX_KEYFRAME_INTERVAL_MS`]
/// apart, or at a bitrate close to the server's limit; OK with any other
/// warning, under 24 fps, or after reconnects; excellent otherwise. `None`
/// while nothing is measured yet.
pub fn verdict(h: &StreamHealth) -> Option<(Verdict, String)> {
    if !h.live {
        return None;
    }
    let Some(video) = h.video.as_ref() else {
        return Some((Verdict::Poor, "No video is arriving.".into()));
    };
    let rate = video.frame_rate_x100;
    if let Some(r) = rate.filter(|r| *r < POOR_FRAME_RATE_X100) {
        return Some((
            Verdict::Poor,
            format!(
                "{} is too few frames for smooth video: the encoder or its machine cannot keep up.",
                fps(r)
            ),
        ));
    }
    if let Some(ms) = video
        .keyframe_interval_ms
        .filter(|ms| *ms > MAX_KEYFRAME_INTERVAL_MS * 2)
    {
        return Some((
            Verdict::Poor,
            format!(
                "Keyframes every {}: viewers wait that long to start and fall far behind live.",
                seconds(ms)
            ),
        ));
    }
    if let Some(w) = h.warnings.iter().find(|w| w.message.contains("limit")) {
        return Some((Verdict::Poor, w.message.clone()));
    }
    if let Some(w) = h.warnings.first() {
        return Some((Verdict::Ok, w.message.clone()));
    }
    if let Some(r) = rate.filter(|r| *r < SMOOTH_FRAME_RATE_X100) {
        return Some((
            Verdict::Ok,
            format!("{}: fine for talk, not for fast motion.", fps(r)),
        ));
    }
    if h.reconnects > 0 {
        let n = h.reconnects;
        return Some((
            Verdict::Ok,
            format!(
                "The connection dropped {n} time{}; viewers saw a pause each time.",
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    Some((Verdict::Excellent, "Nothing to change.".into()))
}

/// `1.5 s`, `12 s`.
pub fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    }
}

/// `2,500 kbit/s` style (whole kbit/s).
pub fn kbps(bps: u64) -> String {
    let k = bps / 1000;
    let digits = k.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} kbit/s")
}

/// `29.97 fps`, `30 fps`.
pub fn fps(x100: u32) -> String {
    if x100.is_multiple_of(100) {
        format!("{} fps", x100 / 100)
    } else {
        format!("{}.{:02} fps", x100 / 100, x100 % 100)
    }
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn HealthBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait HealthBackend: Send + Sync + 'static {
    /// A live stream's measured input (owner or admin).
    fn health(&self, req: Parts, id: String) -> BoxFuture<'_, Result<StreamHealth, AppError>>;
}

/// The stream's health (owner or admin).
#[server(prefix = "/api/fn")]
pub async fn read_health(id: String) -> Result<StreamHealth, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn HealthBackend>()?
            .health(request()?, id)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(height: u32, key_ms: u64, bps: u64) -> StreamHealth {
        StreamHealth {
            live: true,
            video: Some(VideoHealth {
                codec: "h264".into(),
                width: height * 16 / 9,
                height,
                frame_rate_x100: Some(3000),
                keyframe_interval_ms: Some(key_ms),
            }),
            bitrate_bps: Some(bps),
            ..StreamHealth::default()
        }
    }

    #[test]
    fn long_keyframe_intervals_and_high_bitrates_are_warned_about() {
        assert!(warnings(&live(720, 1000, 3_000_000), 20_000_000).is_empty());
        assert!(warnings(&live(720, 2000, 6_000_000), 20_000_000).is_empty());
        let w = warnings(&live(720, 2001, 3_000_000), 20_000_000);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, "keyframe_interval");
        assert!(w[0].message.contains("every 2.0 s"), "{}", w[0].message);
        let w = warnings(&live(360, 1000, 3_100_000), 20_000_000);
        assert_eq!(w[0].code, "bitrate");
        assert!(w[0].message.contains("3,100 kbit/s"), "{}", w[0].message);
        let w = warnings(&live(1080, 1000, 9_000_000), 10_000_000);
        assert!(
            w[0].message.contains("limit of 10,000 kbit/s"),
            "{}",
            w[0].message
        );
        // Audio only: only the server's limit applies.
        let audio_only = StreamHealth {
            bitrate_bps: Some(u64::MAX),
            ..StreamHealth::default()
        };
        assert_eq!(warnings(&audio_only, 20_000_000).len(), 1);
        assert!(warnings(&StreamHealth::default(), 0).is_empty());
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(kbps(2_500_000), "2,500 kbit/s");
        assert_eq!(kbps(12_345_678), "12,345 kbit/s");
        assert_eq!(kbps(999), "0 kbit/s");
        assert_eq!(fps(2997), "29.97 fps");
        assert_eq!(fps(3000), "30 fps");
        assert_eq!(seconds(2500), "2.5 s");
        assert_eq!(seconds(1000), "1 s");
        assert_eq!(recommended_kbps(1080), 6000);
        assert_eq!(recommended_kbps(720), 3000);
        assert_eq!(recommended_kbps(360), 1500);
    }

    #[test]
    fn the_verdict_names_the_worst_thing() {
        let mut h = live(720, 1000, 2_000_000);
        h.video.as_mut().unwrap().frame_rate_x100 = Some(3000);
        h.warnings = warnings(&h, 20_000_000);
        assert_eq!(verdict(&h).map(|v| v.0), Some(Verdict::Excellent));
        // Reconnects, then a slow frame rate, then a warning: OK.
        h.reconnects = 1;
        assert_eq!(
            verdict(&h),
            Some((
                Verdict::Ok,
                "The connection dropped 1 time; viewers saw a pause each time.".into()
            ))
        );
        h.video.as_mut().unwrap().frame_rate_x100 = Some(2000);
        assert!(verdict(&h).unwrap().1.starts_with("20 fps"));
        h.video.as_mut().unwrap().keyframe_interval_ms = Some(2500);
        h.warnings = warnings(&h, 20_000_000);
        let (v, why) = verdict(&h).unwrap();
        assert_eq!(v, Verdict::Ok);
        assert!(why.starts_with("Keyframes come every 2.5 s"), "{why}");
        // Poor: keyframes 5 s apart, under 15 fps, near the limit, no video.
        h.video.as_mut().unwrap().keyframe_interval_ms = Some(5000);
        assert_eq!(verdict(&h).unwrap().0, Verdict::Poor);
        h.video.as_mut().unwrap().keyframe_interval_ms = Some(1000);
        h.video.as_mut().unwrap().frame_rate_x100 = Some(1000);
        assert_eq!(verdict(&h).unwrap().0, Verdict::Poor);
        h.video.as_mut().unwrap().frame_rate_x100 = Some(3000);
        h.warnings = warnings(&h, 2_200_000);
        assert_eq!(verdict(&h).unwrap().0, Verdict::Poor, "{:?}", h.warnings);
        h.video = None;
        assert_eq!(verdict(&h).unwrap().0, Verdict::Poor);
        assert_eq!(verdict(&StreamHealth::default()), None);
    }
}
