//! Elementary frames into a live container byte stream in memory: H.264
//! access units in Annex B (SPS/PPS in band) or VP8 frames, and Opus
//! packets, each with an integer timestamp in its RTP clock (90 kHz video,
//! 48 kHz audio), become the container that the live pipeline reads like an
//! encoder's. Used by the WebRTC (WHIP) ingest, whose depacketized frames
//! have no container.
//!
//! H.264 goes into MPEG-TS (Annex B as it is, like an SRT encoder's; Opus
//! in MPEG-TS as FFmpeg's demuxer reads it back); VP8 into live WebM (as a
//! browser's MediaRecorder sends it), with an `OpusHead` for the audio.
//! FFmpeg's own muxers write them, through a write-only custom AVIO
//! context; every [`FrameMux::write`] returns the bytes it made.

use std::ffi::c_int;
use std::ptr;

use bytes::Bytes;
use ffmpeg_next::{ffi, Packet, Rational};

use super::memout::{MemoryOutput, MemoryOutputError};

/// The video clock: RTP's for H.264.
pub const VIDEO_HZ: i32 = 90_000;
/// The audio clock: RTP's for Opus.
pub const AUDIO_HZ: i32 = 48_000;

/// The muxer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameMuxError {
    /// FFmpeg refused a step.
    #[error("MPEG-TS muxing failed: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    /// Allocation failed.
    #[error("out of memory")]
    Alloc,
    /// A frame for a track the muxer was not opened with.
    #[error("this stream has no audio track")]
    NoAudio,
}

impl From<MemoryOutputError> for FrameMuxError {
    fn from(e: MemoryOutputError) -> Self {
        match e {
            MemoryOutputError::Ffmpeg(e) => FrameMuxError::Ffmpeg(e),
            MemoryOutputError::Alloc => FrameMuxError::Alloc,
        }
    }
}

/// The video codec, which picks the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 in Annex B: MPEG-TS.
    H264,
    /// VP8: WebM. The keyframe's picture size is given.
    Vp8 {
        /// Width in pixels.
        width: u16,
        /// Height in pixels.
        height: u16,
    },
}

/// The picture size in a VP8 keyframe's header (RFC 6386 9.1), if `frame`
/// is a keyframe.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    let tag = *frame.first()?;
    if tag & 1 != 0 || frame.get(3..6)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([*frame.get(6)?, *frame.get(7)?]) & 0x3fff;
    let h = u16::from_le_bytes([*frame.get(8)?, *frame.get(9)?]) & 0x3fff;
    (w > 0 && h > 0).then_some((w, h))
}

/// Opus's identification header (RFC 7845 5.1): stereo, 48 kHz, the
/// encoder delay WebRTC's Opus uses (312 samples).
const OPUS_HEAD: [u8; 19] = [
    b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0,
];

/// Which track a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// H.264, Annex B, 90 kHz.
    Video,
    /// Opus, 48 kHz.
    Audio,
}

/// A live MPEG-TS writer of one H.264 track and, optionally, one Opus track.
pub struct FrameMux {
    out: MemoryOutput,
    audio: bool,
    /// Output time bases after the header: video, then audio.
    time_bases: Vec<Rational>,
    /// The last DTS written per track, in its own clock (kept increasing).
    last: [Option<i64>; 2],
}

impl std::fmt::Debug for FrameMux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameMux")
            .field("audio", &self.audio)
            .finish()
    }
}

impl FrameMux {
    /// Opens the muxer with a `video` track and, if `audio`, an Opus track
    /// (stereo, 48 kHz); returns it with the header bytes.
    pub fn open(video: VideoCodec, audio: bool) -> Result<(Self, Bytes), FrameMuxError> {
        let format = match video {
            VideoCodec::H264 => c"mpegts",
            VideoCodec::Vp8 { .. } => c"webm",
        };
        let mut this = FrameMux {
            out: MemoryOutput::new(format)?,
            audio,
            time_bases: Vec::new(),
            last: [None, None],
        };
        // SAFETY: adding streams to the context we own and filling their
        // codec parameters before the header is written.
        unsafe {
            let ctx = this.out.output().as_mut_ptr();
            let v = ffi::avformat_new_stream(ctx, ptr::null());
            if v.is_null() {
                return Err(FrameMuxError::Alloc);
            }
            (*(*v).codecpar).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
            match video {
                VideoCodec::H264 => (*(*v).codecpar).codec_id = ffi::AVCodecID::AV_CODEC_ID_H264,
                VideoCodec::Vp8 { width, height } => {
                    (*(*v).codecpar).codec_id = ffi::AVCodecID::AV_CODEC_ID_VP8;
                    (*(*v).codecpar).width = c_int::from(width);
                    (*(*v).codecpar).height = c_int::from(height);
                }
            }
            (*v).time_base = ffi::AVRational {
                num: 1,
                den: VIDEO_HZ,
            };
            if audio {
                let a = ffi::avformat_new_stream(ctx, ptr::null());
                if a.is_null() {
                    return Err(FrameMuxError::Alloc);
                }
                let par = (*a).codecpar;
                (*par).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
                (*par).codec_id = ffi::AVCodecID::AV_CODEC_ID_OPUS;
                (*par).sample_rate = AUDIO_HZ;
                ffi::av_channel_layout_default(&mut (*par).ch_layout, 2);
                if matches!(video, VideoCodec::Vp8 { .. }) {
                    // WebM's Opus track carries its OpusHead; the muxer frees it.
                    let padded = OPUS_HEAD.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
                    let extra = ffi::av_mallocz(padded) as *mut u8;
                    if extra.is_null() {
                        return Err(FrameMuxError::Alloc);
                    }
                    ptr::copy_nonoverlapping(OPUS_HEAD.as_ptr(), extra, OPUS_HEAD.len());
                    (*par).extradata = extra;
                    (*par).extradata_size = OPUS_HEAD.len() as c_int;
                }
                (*a).time_base = ffi::AVRational {
                    num: 1,
                    den: AUDIO_HZ,
                };
            }
        }
        let output = this.out.output();
        let mut opts = ffmpeg_next::Dictionary::new();
        if matches!(video, VideoCodec::Vp8 { .. }) {
            // Live WebM: no seeking back, clusters of at most 500 ms.
            opts.set("live", "1");
            opts.set("cluster_time_limit", "500");
        }
        output.write_header_with(opts)?;
        this.time_bases = output.streams().map(|s| s.time_base()).collect();
        let header = this.out.take();
        Ok((this, header))
    }

    /// Writes one frame whose timestamp is `ts` in its track's clock; returns
    /// the bytes made (possibly none: FFmpeg buffers up to a PES packet).
    /// Timestamps that do not increase are moved one tick past the last.
    pub fn write(
        &mut self,
        track: Track,
        ts: i64,
        keyframe: bool,
        data: &[u8],
    ) -> Result<Bytes, FrameMuxError> {
        let (index, clock) = match track {
            Track::Video => (0usize, VIDEO_HZ),
            Track::Audio if self.audio => (1, AUDIO_HZ),
            Track::Audio => return Err(FrameMuxError::NoAudio),
        };
        let ts = match self.last[index] {
            Some(last) if ts <= last => last.saturating_add(1),
            _ => ts,
        };
        self.last[index] = Some(ts);
        let mut packet = Packet::copy(data);
        packet.set_stream(index);
        packet.set_pts(Some(ts));
        packet.set_dts(Some(ts));
        if keyframe {
            packet.set_flags(ffmpeg_next::packet::Flags::KEY);
        }
        let to = self
            .time_bases
            .get(index)
            .copied()
            .unwrap_or(Rational::new(1, clock));
        packet.rescale_ts(Rational::new(1, clock), to);
        packet.write(self.out.output())?;
        Ok(self.out.take())
    }

    /// Ends the stream; returns the last bytes.
    pub fn finish(&mut self) -> Result<Bytes, FrameMuxError> {
        self.out.output().write_trailer()?;
        Ok(self.out.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::testsrc;
    use ffmpeg_next::media::Type;

    /// FFmpeg-made MPEG-TS (x264 with B-frames off, as WebRTC sends, and
    /// libopus): its packets are Annex B access units and Opus packets.
    fn elementary(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("in.ts");
        let args = [
            testsrc::H264_BASELINE,
            &["-g", "30", "-c:a", "libopus", "-f", "mpegts"],
        ]
        .concat();
        testsrc::av("320x240", 3, &args, path.to_str().expect("utf8")).expect("ffmpeg");
        path
    }

    #[test]
    fn h264_and_opus_frames_become_mpeg_ts_that_ffmpeg_reads_back_whole() {
        ffmpeg_next::init().expect("init");
        let dir = tempfile::tempdir().expect("tempdir");
        let input = elementary(dir.path());
        let mut demux = ffmpeg_next::format::input(&input).expect("open");
        let kinds: Vec<(Type, Rational)> = demux
            .streams()
            .map(|s| (s.parameters().medium(), s.time_base()))
            .collect();
        let (mut mux, header) = FrameMux::open(VideoCodec::H264, true).expect("open");
        let mut bytes = header.to_vec();
        let (mut video, mut audio) = (0u64, 0u64);
        for (stream, packet) in demux.packets() {
            let (kind, tb) = kinds[stream.index()];
            let (track, hz) = match kind {
                Type::Video => (Track::Video, VIDEO_HZ),
                Type::Audio => (Track::Audio, AUDIO_HZ),
                _ => continue,
            };
            let pts = packet.pts().expect("pts");
            // Into the track's RTP clock, as str0m hands frames over.
            let ts = pts * i64::from(hz) * i64::from(tb.numerator()) / i64::from(tb.denominator());
            let data = packet.data().expect("data");
            bytes.extend_from_slice(&mux.write(track, ts, packet.is_key(), data).expect("write"));
            match track {
                Track::Video => video += 1,
                Track::Audio => audio += 1,
            }
        }
        bytes.extend_from_slice(&mux.finish().expect("finish"));
        assert!(video >= 89 && audio > 100, "{video} video, {audio} audio");
        let out = dir.path().join("out.ts");
        std::fs::write(&out, &bytes).expect("write");
        let out = out.to_str().expect("utf8");

        let summary = testsrc::probe(out).expect("ffprobe");
        assert_eq!(summary.codecs, ["h264", "opus"], "{summary:?}");
        assert!((summary.duration_s - 3.0).abs() < 0.2, "{summary:?}");
        let json = testsrc::ffprobe_json(&[
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            out,
        ])
        .expect("ffprobe");
        let count = |i: usize| -> u64 {
            json["streams"][i]["nb_read_packets"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        assert_eq!((count(0), count(1)), (video, audio));
        testsrc::decode(out).expect("decodes without an error");
    }

    #[test]
    fn vp8_and_opus_frames_become_live_webm_that_ffmpeg_reads_back_whole() {
        ffmpeg_next::init().expect("init");
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.webm");
        let args = [
            testsrc::VP8_REALTIME,
            &["-g", "30", "-c:a", "libopus", "-f", "webm"],
        ]
        .concat();
        testsrc::av("320x240", 3, &args, input.to_str().expect("utf8")).expect("ffmpeg");
        let mut demux = ffmpeg_next::format::input(&input).expect("open");
        let kinds: Vec<(Type, Rational)> = demux
            .streams()
            .map(|s| (s.parameters().medium(), s.time_base()))
            .collect();
        let mut mux: Option<FrameMux> = None;
        let mut bytes = Vec::new();
        let (mut video, mut audio) = (0u64, 0u64);
        for (stream, packet) in demux.packets() {
            let (kind, tb) = kinds[stream.index()];
            let (track, hz) = match kind {
                Type::Video => (Track::Video, VIDEO_HZ),
                Type::Audio => (Track::Audio, AUDIO_HZ),
                _ => continue,
            };
            let data = packet.data().expect("data");
            if mux.is_none() {
                // Opened at the first keyframe, from the size it states.
                let Some((width, height)) = vp8_keyframe_size(data) else {
                    continue;
                };
                assert_eq!((width, height), (320, 240));
                let (m, header) =
                    FrameMux::open(VideoCodec::Vp8 { width, height }, true).expect("open");
                bytes.extend_from_slice(&header);
                mux = Some(m);
            }
            let m = mux.as_mut().expect("open");
            let pts = packet.pts().expect("pts");
            let ts = pts * i64::from(hz) * i64::from(tb.numerator()) / i64::from(tb.denominator());
            bytes.extend_from_slice(&m.write(track, ts, packet.is_key(), data).expect("write"));
            match track {
                Track::Video => video += 1,
                Track::Audio => audio += 1,
            }
        }
        bytes.extend_from_slice(&mux.expect("opened").finish().expect("finish"));
        assert!(
            crate::ingest::starts_container(&bytes),
            "a WebM header first"
        );
        let out = dir.path().join("out.webm");
        std::fs::write(&out, &bytes).expect("write");
        let out = out.to_str().expect("utf8");
        // Live WebM states no duration (like MediaRecorder's): the codecs,
        // every packet, and the last video timestamp tell what is in it.
        let json = testsrc::ffprobe_json(&[
            "-count_packets",
            "-show_entries",
            "stream=codec_name,nb_read_packets",
            out,
        ])
        .expect("ffprobe");
        let codecs: Vec<&str> = json["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .filter_map(|s| s["codec_name"].as_str())
            .collect();
        assert_eq!(codecs, ["vp8", "opus"], "{json}");
        let last = testsrc::ffprobe_json(&[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            out,
        ])
        .expect("ffprobe")["packets"]
            .as_array()
            .and_then(|p| p.last()?["pts_time"].as_str()?.parse::<f64>().ok())
            .expect("a last video packet");
        assert!((last - 2.967).abs() < 0.05, "last video frame at {last} s");
        let count = |i: usize| -> u64 {
            json["streams"][i]["nb_read_packets"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        assert_eq!((count(0), count(1)), (video, audio));
        testsrc::decode(out).expect("decodes without an error");
    }

    #[test]
    fn a_vp8_keyframe_states_its_size_and_other_frames_do_not() {
        // Frame tag (keyframe, shown), start code, 640x360 with no scaling.
        let key = [
            0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0x00,
        ];
        assert_eq!(vp8_keyframe_size(&key), Some((640, 360)));
        let mut inter = key;
        inter[0] |= 1;
        assert_eq!(vp8_keyframe_size(&inter), None);
        assert_eq!(vp8_keyframe_size(&key[..8]), None);
        assert_eq!(vp8_keyframe_size(&[]), None);
    }

    #[test]
    fn timestamps_that_go_back_are_moved_forward_and_audio_needs_its_track() {
        ffmpeg_next::init().expect("init");
        let (mut mux, _) = FrameMux::open(VideoCodec::H264, false).expect("open");
        assert!(matches!(
            mux.write(Track::Audio, 0, false, &[1, 2, 3]),
            Err(FrameMuxError::NoAudio)
        ));
        let au = [0u8, 0, 0, 1, 0x09, 0xf0];
        mux.write(Track::Video, 3000, true, &au).expect("write");
        mux.write(Track::Video, 3000, false, &au)
            .expect("same time");
        mux.write(Track::Video, 10, false, &au).expect("earlier");
        assert_eq!(mux.last[0], Some(3002));
    }
}
