//! The pipeline's WebRTC output: while the sink asks for it
//! ([`Publish::wants_rtc`](super::Publish::wants_rtc), that is while the
//! stream has WHEP viewers), the passed-through H.264's access units go out
//! in Annex B, the parameter sets in band before each keyframe, at their
//! presentation time on the stream's 90 kHz timeline; the source's audio is
//! decoded and encoded to Opus at 48 kHz, once per stream, on the same
//! timeline (Opus from the source is kept as sent). Nothing is converted,
//! and no encoder is open, otherwise.
//!
//! The conversions ([`annex_b`], [`opus_time`], [`ticks_48k`]) are sans-IO.

use bytes::Bytes;
use ffmpeg_next::{codec, Rational};

use super::timeline::Ctx;
use crate::media::transcode::{audio_encoder, AudioEncode};
use crate::packager::h264;

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcKind {
    /// H.264, Annex B, at 90 kHz.
    Video,
    /// Opus, at 48 kHz.
    Audio,
}

/// One frame for WebRTC viewers.
#[derive(Debug, Clone)]
pub struct RtcFrame {
    /// Video or audio.
    pub kind: RtcKind,
    /// Presentation time on the stream's timeline: 90 kHz (video), 48 kHz (audio).
    pub time: u64,
    /// An H.264 IDR access unit (with its parameter sets).
    pub keyframe: bool,
    /// The access unit (Annex B) or the Opus packet.
    pub data: Bytes,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Turns a sample's 4-byte length-prefixed NAL units into an Annex B access
/// unit; `params` (SPS then PPS), given for a keyframe, go first. `None` if
/// the sample is not length-prefixed.
pub fn annex_b(length_prefixed: &[u8], params: Option<(&[Bytes], &[Bytes])>) -> Option<Vec<u8>> {
    let units = h264::split_length_prefixed(length_prefixed)?;
    let (sps, pps): (&[Bytes], &[Bytes]) = params.unwrap_or((&[], &[]));
    let size = sps.iter().chain(pps).map(|u| u.len() + 4).sum::<usize>()
        + units.iter().map(|u| u.len() + 4).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    for unit in sps.iter().map(|b| &b[..]).chain(pps.iter().map(|b| &b[..])) {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(unit);
    }
    for unit in units {
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(unit);
    }
    Some(out)
}

/// An Opus packet's time on the 48 kHz timeline: its time from the encoder
/// (the source's, at 48 kHz) plus the period's offset (90 kHz), never
/// before zero.
pub fn opus_time(pts_48k: i64, offset_90k: i64) -> u64 {
    // 48000 / 90000 = 8 / 15, rounded down.
    let offset = i128::from(offset_90k) * 8 / 15;
    u64::try_from((i128::from(pts_48k) + offset).max(0)).unwrap_or(u64::MAX)
}

/// A timestamp in `time_base` (numerator, denominator) at 48 kHz, rounded
/// down; a time base that is not positive counts as 1/1000.
pub fn ticks_48k(ts: i64, (num, den): (i32, i32)) -> i64 {
    let (num, den) = if num > 0 && den > 0 {
        (i128::from(num), i128::from(den))
    } else {
        (1, 1000)
    };
    let v = (i128::from(ts) * num * 48_000).div_euclid(den);
    i64::try_from(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX))).unwrap_or(0)
}

/// The audio stream the Opus encoder reads: its parameters, as the period opened it.
pub(super) struct RtcAudioSource {
    pub(super) params: codec::Parameters,
    pub(super) time_base: Rational,
    pub(super) stream_index: usize,
}

/// The Opus side: the source, and the encoder while viewers want it.
#[derive(Default)]
pub(super) struct RtcAudio {
    pub(super) source: Option<RtcAudioSource>,
    encoder: Option<AudioEncode>,
    /// The encoder could not be opened for this period's audio.
    failed: bool,
}

impl RtcAudio {
    /// A new period's audio stream (or none).
    pub(super) fn set_source(&mut self, source: Option<RtcAudioSource>) {
        self.source = source;
        self.encoder = None;
        self.failed = false;
    }

    /// Nobody watches: the encoder is closed.
    pub(super) fn idle(&mut self) {
        self.encoder = None;
    }

    /// One demuxed packet of stream `index`: encoded to Opus when it is the
    /// audio's, each packet handed to the sink.
    pub(super) fn packet(
        &mut self,
        ctx: &Ctx<'_>,
        index: usize,
        packet: &ffmpeg_next::Packet,
        offset_90k: i64,
    ) {
        let Some(source) = self.source.as_ref().filter(|s| s.stream_index == index) else {
            return;
        };
        if source.params.id() == codec::Id::OPUS {
            // The source's Opus is kept as sent (the browser studio's).
            let (Some(pts), Some(data)) = (packet.pts().or(packet.dts()), packet.data()) else {
                return;
            };
            let tb = (source.time_base.numerator(), source.time_base.denominator());
            ctx.sink.borrow_mut().rtc(RtcFrame {
                kind: RtcKind::Audio,
                time: opus_time(ticks_48k(pts, tb), offset_90k),
                keyframe: false,
                data: Bytes::copy_from_slice(data),
            });
            return;
        }
        if self.failed {
            return;
        }
        if self.encoder.is_none() {
            let opus = audio_encoder().is_some_and(|(_, name, _)| name == "libopus");
            match AudioEncode::new(source.params.clone(), source.time_base, false) {
                Ok(e) if opus => self.encoder = Some(e),
                Ok(_) => {
                    tracing::warn!("WHEP: this FFmpeg has no libopus, the viewers get no audio");
                    self.failed = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "WHEP: cannot encode the audio to Opus");
                    self.failed = true;
                }
            }
        }
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        let packets = match encoder.push(packet) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "WHEP: Opus encoding failed");
                self.encoder = None;
                self.failed = true;
                return;
            }
        };
        let mut sink = ctx.sink.borrow_mut();
        for p in packets {
            let (Some(pts), Some(data)) = (p.pts(), p.data()) else {
                continue;
            };
            sink.rtc(RtcFrame {
                kind: RtcKind::Audio,
                time: opus_time(pts, offset_90k),
                keyframe: false,
                data: Bytes::copy_from_slice(data),
            });
        }
    }
}

/// A passed-through video sample (`time`: its presentation time, 90 kHz),
/// to the sink in Annex B; a keyframe with `sps` and `pps` first.
pub(super) fn video_sample(
    ctx: &Ctx<'_>,
    time: u64,
    keyframe: bool,
    data: &[u8],
    sps: &[Bytes],
    pps: &[Bytes],
) {
    let params = keyframe.then_some((sps, pps));
    if let Some(au) = annex_b(data, params) {
        ctx.sink.borrow_mut().rtc(RtcFrame {
            kind: RtcKind::Video,
            time,
            keyframe,
            data: Bytes::from(au),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixed(units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            out.extend_from_slice(&(u.len() as u32).to_be_bytes());
            out.extend_from_slice(u);
        }
        out
    }

    #[test]
    fn a_keyframe_gets_its_parameter_sets_in_band() {
        let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x03, 0x01];
        let sei: &[u8] = &[0x06, 0x05, 0x01];
        let sps = [Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f])];
        let pps = [Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80])];
        let au = annex_b(&prefixed(&[sei, idr]), Some((&sps, &pps))).expect("parses");
        let units = h264::split_annex_b(&au);
        assert_eq!(units, vec![&sps[0][..], &pps[0][..], sei, idr]);
        // Every unit behind a four-byte start code.
        assert!(au.starts_with(&[0, 0, 0, 1, 0x67]));
    }

    #[test]
    fn a_delta_frame_goes_alone_and_garbage_is_refused() {
        let p: &[u8] = &[0x41, 0x9a, 0x00];
        let au = annex_b(&prefixed(&[p]), None).expect("parses");
        assert_eq!(au, [&[0u8, 0, 0, 1][..], p].concat());
        // A length past the end is not a sample.
        assert_eq!(annex_b(&[0, 0, 0, 9, 0x41], None), None);
        assert_eq!(annex_b(&[], None), Some(Vec::new()));
    }

    #[test]
    fn opus_times_follow_the_period_offset() {
        // One second of offset at 90 kHz is one second at 48 kHz.
        assert_eq!(opus_time(960, 90_000), 48_960);
        // A negative offset never goes below zero.
        assert_eq!(opus_time(960, -900_000), 0);
        assert_eq!(opus_time(-960, 0), 0);
        // Huge values saturate instead of wrapping.
        assert!(opus_time(i64::MAX, i64::MAX) > i64::MAX as u64);
    }

    #[test]
    fn kept_opus_times_come_to_48_khz() {
        // Matroska's milliseconds, MPEG-TS's 90 kHz, Opus's own 48 kHz.
        assert_eq!(ticks_48k(20, (1, 1000)), 960);
        assert_eq!(ticks_48k(1_800, (1, 90_000)), 960);
        assert_eq!(ticks_48k(960, (1, 48_000)), 960);
        assert_eq!(ticks_48k(-20, (1, 1000)), -960);
        // A broken time base, huge values: no panic, no wrap.
        assert_eq!(ticks_48k(20, (0, 0)), 960);
        assert_eq!(ticks_48k(i64::MAX, (1, 1)), i64::MAX);
        assert_eq!(ticks_48k(i64::MIN, (1, 1)), i64::MIN);
    }
}
