//! FLV audio and video tag bodies, as carried by RTMP audio (8) and video (9)
//! messages: the legacy FLV 10.1 headers and Enhanced RTMP's FourCC headers.
//!
//! Video, legacy: `FrameType:4 | CodecID:4`; for AVC (7) then
//! `AVCPacketType:8` (0 sequence header = AVCDecoderConfigurationRecord,
//! 1 NAL units, 2 end of sequence) and a signed 24-bit composition time offset
//! in milliseconds. CodecID 12 (the pre-Enhanced-RTMP HEVC extension some
//! encoders and servers use) is read with the same layout. A command frame
//! (frame type 5) carries one command byte and no picture. Other codec ids are
//! reported as [`VideoCodec::Legacy`] with their payload, so the caller can
//! refuse them with a clear reason.
//!
//! Video, enhanced (the top bit of the first byte set):
//! `1 | FrameType:3 | PacketType:4`, optional ModEx blocks (skipped; the
//! nanosecond timestamp offset they can carry is not applied), optional
//! multitrack header (one track only), then a FourCC (`avc1`, `hvc1`, `av01`,
//! `vp09`, `vp08`, `vvc1`) and the body for the packet type: SequenceStart (0,
//! the codec's configuration record), CodedFrames (1; for `avc1`, `hvc1` and
//! `vvc1` preceded by an SI24 composition time offset), SequenceEnd (2),
//! CodedFramesX (3, offset 0), Metadata (4, an AMF0 body) and
//! MPEG2TSSequenceStart (5).
//!
//! Audio, legacy: `SoundFormat:4 | rate:2 | size:1 | type:1`; for AAC (10) then
//! `AACPacketType:8` (0 AudioSpecificConfig, 1 raw frame). Other formats are
//! reported as [`AudioCodec::Legacy`]. Audio, enhanced (SoundFormat 9):
//! `9 | PacketType:4`, ModEx, optional multitrack (one track), a FourCC (`mp4a`,
//! `Opus`, `fLaC`, `ac-3`, `ec-3`, `.mp3`) and SequenceStart (0), CodedFrames
//! (1), SequenceEnd (2) or MultichannelConfig (4).

use crate::reader::Reader;

/// The frame type of a video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFrameType {
    /// A seekable frame (for AVC and HEVC, an IDR or other random access point).
    KeyFrame,
    InterFrame,
    DisposableInterFrame,
    GeneratedKeyFrame,
    /// A video info/command frame: no picture.
    Command,
    /// 0, 6, 7 (and 8-15 in legacy tags).
    Reserved(u8),
}

impl VideoFrameType {
    fn from_bits(v: u8) -> Self {
        match v {
            1 => Self::KeyFrame,
            2 => Self::InterFrame,
            3 => Self::DisposableInterFrame,
            4 => Self::GeneratedKeyFrame,
            5 => Self::Command,
            other => Self::Reserved(other),
        }
    }

    pub fn is_keyframe(self) -> bool {
        matches!(self, Self::KeyFrame | Self::GeneratedKeyFrame)
    }
}

/// The video codec of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264: legacy CodecID 7 or FourCC `avc1`.
    Avc,
    /// H.265: FourCC `hvc1`, or the legacy CodecID 12 extension.
    Hevc,
    /// FourCC `av01`.
    Av1,
    /// FourCC `vp09`.
    Vp9,
    /// FourCC `vp08`.
    Vp8,
    /// FourCC `vvc1` (H.266).
    Vvc,
    /// Another legacy FLV CodecID (2 Sorenson H.263, 3 screen video, 4 VP6,
    /// 5 VP6 with alpha, 6 screen video 2, or reserved values).
    Legacy(u8),
    /// An enhanced tag with a FourCC this crate does not know.
    FourCc([u8; 4]),
    /// An enhanced command frame, which names no codec.
    Unspecified,
}

impl VideoCodec {
    fn from_fourcc(f: [u8; 4]) -> Self {
        match &f {
            b"avc1" => Self::Avc,
            b"hvc1" => Self::Hevc,
            b"av01" => Self::Av1,
            b"vp09" => Self::Vp9,
            b"vp08" => Self::Vp8,
            b"vvc1" => Self::Vvc,
            _ => Self::FourCc(f),
        }
    }

    /// A name for logs and refusals ("H.264", "VP6", "FourCC 'abcd'").
    pub fn name(&self) -> String {
        match self {
            Self::Avc => "H.264".into(),
            Self::Hevc => "H.265/HEVC".into(),
            Self::Av1 => "AV1".into(),
            Self::Vp9 => "VP9".into(),
            Self::Vp8 => "VP8".into(),
            Self::Vvc => "H.266/VVC".into(),
            Self::Legacy(2) => "Sorenson H.263".into(),
            Self::Legacy(3) => "Screen video".into(),
            Self::Legacy(4) => "On2 VP6".into(),
            Self::Legacy(5) => "On2 VP6 with alpha".into(),
            Self::Legacy(6) => "Screen video v2".into(),
            Self::Legacy(id) => format!("FLV video codec id {id}"),
            Self::FourCc(f) => format!("FourCC '{}'", fourcc_text(f)),
            Self::Unspecified => "unspecified".into(),
        }
    }
}

/// What a video tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacketKind {
    /// Decoder configuration: avcC (AVC), hvcC (HEVC), av1C (AV1), vpcC (VP8/9).
    SequenceHeader,
    /// Coded frame(s): for AVC/HEVC/VVC, length-prefixed NAL units.
    CodedFrame,
    EndOfSequence,
    /// Enhanced RTMP metadata (AMF0 in `data`, e.g. `colorInfo`).
    Metadata,
    /// A command frame with its command byte (0 start seek, 1 end seek).
    Command(u8),
    /// Enhanced RTMP MPEG-2 TS sequence start (a codec descriptor in `data`).
    Mpeg2TsSequenceStart,
}

/// One parsed video message, on the session's unwrapped timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvVideo {
    /// Decode time: the RTMP timestamp unwrapped to 64 bits, in milliseconds.
    pub dts_ms: i64,
    /// Presentation time: `dts_ms + composition_offset_ms`, in milliseconds.
    pub pts_ms: i64,
    /// Signed composition time offset from the tag (0 where it has none).
    pub composition_offset_ms: i32,
    pub frame_type: VideoFrameType,
    pub codec: VideoCodec,
    pub kind: VideoPacketKind,
    /// Whether the tag used the Enhanced RTMP header.
    pub enhanced: bool,
    /// The body after the FLV/Enhanced headers.
    pub data: Vec<u8>,
}

/// The audio codec of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC: legacy SoundFormat 10 or FourCC `mp4a`.
    Aac,
    /// MP3: legacy SoundFormat 2 or 14 (8 kHz), or FourCC `.mp3`.
    Mp3,
    /// FourCC `Opus`.
    Opus,
    /// FourCC `fLaC`.
    Flac,
    /// FourCC `ac-3`.
    Ac3,
    /// FourCC `ec-3`.
    Eac3,
    /// Another legacy SoundFormat (0/3 PCM, 1 ADPCM, 4-6 Nellymoser,
    /// 7/8 G.711, 11 Speex, 15 device-specific, reserved values).
    Legacy(u8),
    /// An enhanced tag with a FourCC this crate does not know.
    FourCc([u8; 4]),
}

impl AudioCodec {
    fn from_fourcc(f: [u8; 4]) -> Self {
        match &f {
            b"mp4a" => Self::Aac,
            b".mp3" => Self::Mp3,
            b"Opus" => Self::Opus,
            b"fLaC" => Self::Flac,
            b"ac-3" => Self::Ac3,
            b"ec-3" => Self::Eac3,
            _ => Self::FourCc(f),
        }
    }

    /// A name for logs and refusals ("AAC", "Speex", "FourCC 'abcd'").
    pub fn name(&self) -> String {
        match self {
            Self::Aac => "AAC".into(),
            Self::Mp3 => "MP3".into(),
            Self::Opus => "Opus".into(),
            Self::Flac => "FLAC".into(),
            Self::Ac3 => "AC-3".into(),
            Self::Eac3 => "E-AC-3".into(),
            Self::Legacy(0) => "Linear PCM (platform endian)".into(),
            Self::Legacy(1) => "ADPCM".into(),
            Self::Legacy(3) => "Linear PCM (little endian)".into(),
            Self::Legacy(4..=6) => "Nellymoser".into(),
            Self::Legacy(7) => "G.711 A-law".into(),
            Self::Legacy(8) => "G.711 mu-law".into(),
            Self::Legacy(11) => "Speex".into(),
            Self::Legacy(15) => "device-specific sound".into(),
            Self::Legacy(id) => format!("FLV sound format {id}"),
            Self::FourCc(f) => format!("FourCC '{}'", fourcc_text(f)),
        }
    }
}

/// What an audio tag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacketKind {
    /// Decoder configuration (AAC: AudioSpecificConfig; Opus: ID header; FLAC:
    /// STREAMINFO).
    SequenceHeader,
    /// Coded audio (AAC: one raw access unit).
    CodedFrame,
    EndOfSequence,
    /// Enhanced RTMP multichannel configuration (raw in `data`).
    MultichannelConfig,
}

/// One parsed audio message, on the session's unwrapped timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvAudio {
    /// The RTMP timestamp unwrapped to 64 bits, in milliseconds (audio has no
    /// composition offset: this is both decode and presentation time).
    pub dts_ms: i64,
    pub codec: AudioCodec,
    pub kind: AudioPacketKind,
    /// Whether the tag used the Enhanced RTMP header.
    pub enhanced: bool,
    /// The body after the FLV/Enhanced headers.
    pub data: Vec<u8>,
}

/// Why a media tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("{0} tag truncated")]
    Truncated(&'static str),
    #[error("unknown AVCPacketType {0}")]
    UnknownAvcPacketType(u8),
    #[error("unknown AACPacketType {0}")]
    UnknownAacPacketType(u8),
    #[error("unknown enhanced video packet type {0}")]
    UnknownVideoPacketType(u8),
    #[error("unknown enhanced audio packet type {0}")]
    UnknownAudioPacketType(u8),
    #[error("multitrack type {0} is not supported (only one track)")]
    UnsupportedMultitrack(u8),
}

fn fourcc_text(f: &[u8; 4]) -> String {
    f.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

fn rest_after(payload: Vec<u8>, header_len: usize) -> Vec<u8> {
    let mut payload = payload;
    let n = header_len.min(payload.len());
    payload.drain(..n);
    payload
}

/// Skips Enhanced RTMP ModEx blocks; returns the packet type that follows.
fn skip_mod_ex(
    r: &mut Reader<'_>,
    mut packet_type: u8,
    mod_ex: u8,
    what: &'static str,
) -> Result<u8, FlvError> {
    while packet_type == mod_ex {
        let size = r.u8().ok_or(FlvError::Truncated(what))?;
        let size = if size == 255 {
            usize::from(r.u16_be().ok_or(FlvError::Truncated(what))?).saturating_add(1)
        } else {
            usize::from(size).saturating_add(1)
        };
        r.bytes(size).ok_or(FlvError::Truncated(what))?;
        let b = r.u8().ok_or(FlvError::Truncated(what))?;
        packet_type = b & 0x0F;
    }
    Ok(packet_type)
}

/// Reads the FourCC of an enhanced tag, handling a one-track multitrack
/// header. Returns the packet type (the multitrack header carries its own).
fn read_fourcc(
    r: &mut Reader<'_>,
    packet_type: u8,
    multitrack: u8,
    what: &'static str,
) -> Result<(u8, [u8; 4]), FlvError> {
    if packet_type == multitrack {
        let b = r.u8().ok_or(FlvError::Truncated(what))?;
        let mt_type = b >> 4;
        if mt_type != 0 {
            return Err(FlvError::UnsupportedMultitrack(mt_type));
        }
        let inner = b & 0x0F;
        let fourcc = r.array::<4>().ok_or(FlvError::Truncated(what))?;
        let _track_id = r.u8().ok_or(FlvError::Truncated(what))?;
        Ok((inner, fourcc))
    } else {
        Ok((
            packet_type,
            r.array::<4>().ok_or(FlvError::Truncated(what))?,
        ))
    }
}

/// Parses a video message body. `dts_ms` is the message's unwrapped timestamp.
pub fn parse_video(payload: Vec<u8>, dts_ms: i64) -> Result<FlvVideo, FlvError> {
    const WHAT: &str = "video";
    let mut r = Reader::new(&payload);
    let b0 = r.u8().ok_or(FlvError::Truncated(WHAT))?;
    let enhanced = b0 & 0x80 != 0;
    let (frame_type, codec, kind, cts) = if !enhanced {
        let frame_type = VideoFrameType::from_bits(b0 >> 4);
        let codec_id = b0 & 0x0F;
        let codec = match codec_id {
            7 => VideoCodec::Avc,
            12 => VideoCodec::Hevc,
            other => VideoCodec::Legacy(other),
        };
        if frame_type == VideoFrameType::Command {
            let cmd = r.u8().ok_or(FlvError::Truncated(WHAT))?;
            (frame_type, codec, VideoPacketKind::Command(cmd), 0)
        } else if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
            let packet_type = r.u8().ok_or(FlvError::Truncated(WHAT))?;
            let cts = r.i24_be().ok_or(FlvError::Truncated(WHAT))?;
            let kind = match packet_type {
                0 => VideoPacketKind::SequenceHeader,
                1 => VideoPacketKind::CodedFrame,
                2 => VideoPacketKind::EndOfSequence,
                other => return Err(FlvError::UnknownAvcPacketType(other)),
            };
            // Only NAL units carry a composition offset; elsewhere it is 0.
            let cts = if kind == VideoPacketKind::CodedFrame {
                cts
            } else {
                0
            };
            (frame_type, codec, kind, cts)
        } else {
            (frame_type, codec, VideoPacketKind::CodedFrame, 0)
        }
    } else {
        let frame_type = VideoFrameType::from_bits((b0 >> 4) & 0x07);
        let packet_type = skip_mod_ex(&mut r, b0 & 0x0F, 7, WHAT)?;
        if packet_type != 4 && frame_type == VideoFrameType::Command {
            let cmd = r.u8().ok_or(FlvError::Truncated(WHAT))?;
            (
                frame_type,
                VideoCodec::Unspecified,
                VideoPacketKind::Command(cmd),
                0,
            )
        } else {
            let (packet_type, fourcc) = read_fourcc(&mut r, packet_type, 6, WHAT)?;
            let codec = VideoCodec::from_fourcc(fourcc);
            let (kind, cts) = match packet_type {
                0 => (VideoPacketKind::SequenceHeader, 0),
                1 => {
                    let cts =
                        if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc | VideoCodec::Vvc) {
                            r.i24_be().ok_or(FlvError::Truncated(WHAT))?
                        } else {
                            0
                        };
                    (VideoPacketKind::CodedFrame, cts)
                }
                2 => (VideoPacketKind::EndOfSequence, 0),
                3 => (VideoPacketKind::CodedFrame, 0),
                4 => (VideoPacketKind::Metadata, 0),
                5 => (VideoPacketKind::Mpeg2TsSequenceStart, 0),
                other => return Err(FlvError::UnknownVideoPacketType(other)),
            };
            (frame_type, codec, kind, cts)
        }
    };
    let header_len = r.position();
    Ok(FlvVideo {
        dts_ms,
        pts_ms: dts_ms.saturating_add(i64::from(cts)),
        composition_offset_ms: cts,
        frame_type,
        codec,
        kind,
        enhanced,
        data: rest_after(payload, header_len),
    })
}

/// Parses an audio message body. `dts_ms` is the message's unwrapped timestamp.
pub fn parse_audio(payload: Vec<u8>, dts_ms: i64) -> Result<FlvAudio, FlvError> {
    const WHAT: &str = "audio";
    let mut r = Reader::new(&payload);
    let b0 = r.u8().ok_or(FlvError::Truncated(WHAT))?;
    let sound_format = b0 >> 4;
    let enhanced = sound_format == 9;
    let (codec, kind) = if !enhanced {
        match sound_format {
            10 => {
                let packet_type = r.u8().ok_or(FlvError::Truncated(WHAT))?;
                let kind = match packet_type {
                    0 => AudioPacketKind::SequenceHeader,
                    1 => AudioPacketKind::CodedFrame,
                    other => return Err(FlvError::UnknownAacPacketType(other)),
                };
                (AudioCodec::Aac, kind)
            }
            2 | 14 => (AudioCodec::Mp3, AudioPacketKind::CodedFrame),
            other => (AudioCodec::Legacy(other), AudioPacketKind::CodedFrame),
        }
    } else {
        let packet_type = skip_mod_ex(&mut r, b0 & 0x0F, 7, WHAT)?;
        let (packet_type, fourcc) = read_fourcc(&mut r, packet_type, 5, WHAT)?;
        let kind = match packet_type {
            0 => AudioPacketKind::SequenceHeader,
            1 => AudioPacketKind::CodedFrame,
            2 => AudioPacketKind::EndOfSequence,
            4 => AudioPacketKind::MultichannelConfig,
            other => return Err(FlvError::UnknownAudioPacketType(other)),
        };
        (AudioCodec::from_fourcc(fourcc), kind)
    };
    let header_len = r.position();
    Ok(FlvAudio {
        dts_ms,
        codec,
        kind,
        enhanced,
        data: rest_after(payload, header_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc_sequence_header_and_nalus_with_signed_cts() {
        let v = parse_video(vec![0x17, 0x00, 0, 0, 0, 1, 0x64, 0x00, 0x1F], 1000).expect("ok");
        assert_eq!(v.kind, VideoPacketKind::SequenceHeader);
        assert_eq!(v.codec, VideoCodec::Avc);
        assert!(v.frame_type.is_keyframe());
        assert_eq!(v.data, vec![1, 0x64, 0x00, 0x1F]);
        assert_eq!((v.dts_ms, v.pts_ms), (1000, 1000));

        // Inter frame, NALU, cts +66.
        let v =
            parse_video(vec![0x27, 0x01, 0x00, 0x00, 0x42, 0, 0, 0, 1, 0x41], 2000).expect("ok");
        assert_eq!(v.frame_type, VideoFrameType::InterFrame);
        assert_eq!(v.kind, VideoPacketKind::CodedFrame);
        assert_eq!(v.composition_offset_ms, 66);
        assert_eq!((v.dts_ms, v.pts_ms), (2000, 2066));
        assert_eq!(v.data, vec![0, 0, 0, 1, 0x41]);

        // Negative cts (-33 = 0xFFFFDF).
        let v = parse_video(vec![0x27, 0x01, 0xFF, 0xFF, 0xDF], 100).expect("ok");
        assert_eq!((v.composition_offset_ms, v.pts_ms), (-33, 67));

        // End of sequence.
        let v = parse_video(vec![0x17, 0x02, 0, 0, 0], 5).expect("ok");
        assert_eq!(v.kind, VideoPacketKind::EndOfSequence);
        assert!(v.data.is_empty());
    }

    #[test]
    fn legacy_other_codecs_and_commands() {
        let v = parse_video(vec![0x22, 0xAB, 0xCD], 0).expect("ok");
        assert_eq!(v.codec, VideoCodec::Legacy(2));
        assert_eq!(v.codec.name(), "Sorenson H.263");
        assert_eq!(v.data, vec![0xAB, 0xCD]);
        let v = parse_video(vec![0x57, 0x01], 0).expect("ok");
        assert_eq!(v.kind, VideoPacketKind::Command(1));
        let v = parse_video(vec![0x1C, 0x01, 0, 0, 0x21, 9], 0).expect("ok");
        assert_eq!((v.codec, v.composition_offset_ms), (VideoCodec::Hevc, 33));
    }

    #[test]
    fn enhanced_hevc_av1_avc() {
        // hvc1 SequenceStart, key frame: 1 001 0000
        let mut b = vec![0x90];
        b.extend_from_slice(b"hvc1");
        b.extend_from_slice(&[1, 2, 3]);
        let v = parse_video(b, 10).expect("ok");
        assert!(v.enhanced);
        assert_eq!(
            (v.codec, v.kind),
            (VideoCodec::Hevc, VideoPacketKind::SequenceHeader)
        );
        assert_eq!(v.data, vec![1, 2, 3]);

        // hvc1 CodedFrames (1) with cts 40, inter frame: 1 010 0001
        let mut b = vec![0xA1];
        b.extend_from_slice(b"hvc1");
        b.extend_from_slice(&[0, 0, 40, 7, 7]);
        let v = parse_video(b, 10).expect("ok");
        assert_eq!(
            (v.kind, v.pts_ms, v.data.clone()),
            (VideoPacketKind::CodedFrame, 50, vec![7, 7])
        );

        // hvc1 CodedFramesX (3): no cts.
        let mut b = vec![0x93];
        b.extend_from_slice(b"hvc1");
        b.extend_from_slice(&[5]);
        let v = parse_video(b, 10).expect("ok");
        assert_eq!(
            (v.kind, v.pts_ms, v.data.clone()),
            (VideoPacketKind::CodedFrame, 10, vec![5])
        );
        assert!(v.frame_type.is_keyframe());

        // av01 CodedFrames: no cts field.
        let mut b = vec![0x91];
        b.extend_from_slice(b"av01");
        b.extend_from_slice(&[0x12, 0x00]);
        let v = parse_video(b, 10).expect("ok");
        assert_eq!(
            (v.codec, v.data.clone(), v.pts_ms),
            (VideoCodec::Av1, vec![0x12, 0x00], 10)
        );

        // avc1 CodedFrames has a cts.
        let mut b = vec![0xA1];
        b.extend_from_slice(b"avc1");
        b.extend_from_slice(&[0xFF, 0xFF, 0xFF, 9]);
        let v = parse_video(b, 10).expect("ok");
        assert_eq!(
            (v.codec, v.pts_ms, v.data.clone()),
            (VideoCodec::Avc, 9, vec![9])
        );

        // SequenceEnd and Metadata.
        let mut b = vec![0x92];
        b.extend_from_slice(b"av01");
        assert_eq!(
            parse_video(b, 0).expect("ok").kind,
            VideoPacketKind::EndOfSequence
        );
        let mut b = vec![0xD4]; // frame type 5 is ignored for Metadata
        b.extend_from_slice(b"hvc1");
        b.extend_from_slice(&[0x02, 0, 1, b'x']);
        let v = parse_video(b, 0).expect("ok");
        assert_eq!(
            (v.kind, v.data.clone()),
            (VideoPacketKind::Metadata, vec![0x02, 0, 1, b'x'])
        );

        // Command frame without FourCC.
        let v = parse_video(vec![0xD1, 0x00], 0).expect("ok");
        assert_eq!(
            (v.codec, v.kind),
            (VideoCodec::Unspecified, VideoPacketKind::Command(0))
        );

        // Unknown FourCC is reported, not refused.
        let mut b = vec![0x93];
        b.extend_from_slice(b"xyz\x01");
        let v = parse_video(b, 0).expect("ok");
        assert_eq!(v.codec, VideoCodec::FourCc(*b"xyz\x01"));
        assert_eq!(v.codec.name(), "FourCC 'xyz\\x01'");
    }

    #[test]
    fn enhanced_mod_ex_and_one_track_multitrack() {
        // ModEx (7) with 3 bytes of data (size-1 = 2), then type 0x0 | CodedFramesX.
        let mut b = vec![0x97, 2, 0, 0, 5, 0x03];
        b.extend_from_slice(b"hvc1");
        b.push(0xEE);
        let v = parse_video(b, 1).expect("ok");
        assert_eq!(
            (v.kind, v.data.clone()),
            (VideoPacketKind::CodedFrame, vec![0xEE])
        );

        // Multitrack (6), OneTrack (0) | CodedFramesX (3), FourCC, track id.
        let mut b = vec![0x96, 0x03];
        b.extend_from_slice(b"av01");
        b.extend_from_slice(&[0, 0xAB]);
        let v = parse_video(b, 1).expect("ok");
        assert_eq!((v.codec, v.data.clone()), (VideoCodec::Av1, vec![0xAB]));

        // ManyTracks is refused.
        let mut b = vec![0x96, 0x13];
        b.extend_from_slice(b"av01");
        assert_eq!(parse_video(b, 0), Err(FlvError::UnsupportedMultitrack(1)));
    }

    #[test]
    fn video_refusals() {
        assert_eq!(parse_video(vec![], 0), Err(FlvError::Truncated("video")));
        assert_eq!(
            parse_video(vec![0x17, 0x00, 0x00], 0),
            Err(FlvError::Truncated("video"))
        );
        assert_eq!(
            parse_video(vec![0x17, 0x05, 0, 0, 0], 0),
            Err(FlvError::UnknownAvcPacketType(5))
        );
        assert_eq!(
            parse_video(vec![0x90, b'h'], 0),
            Err(FlvError::Truncated("video"))
        );
        let mut b = vec![0x9A];
        b.extend_from_slice(b"hvc1");
        assert_eq!(parse_video(b, 0), Err(FlvError::UnknownVideoPacketType(10)));
        let mut b = vec![0x91];
        b.extend_from_slice(b"hvc1");
        b.push(0);
        assert_eq!(parse_video(b, 0), Err(FlvError::Truncated("video")));
        // ModEx with a 16-bit size that runs past the end.
        assert_eq!(
            parse_video(vec![0x97, 0xFF, 0xFF, 0xFF], 0),
            Err(FlvError::Truncated("video"))
        );
    }

    #[test]
    fn audio_aac_and_others() {
        let a = parse_audio(vec![0xAF, 0x00, 0x12, 0x10], 0).expect("ok");
        assert_eq!(
            (a.codec, a.kind, a.data.clone()),
            (
                AudioCodec::Aac,
                AudioPacketKind::SequenceHeader,
                vec![0x12, 0x10]
            )
        );
        let a = parse_audio(vec![0xAF, 0x01, 0x21, 0x00], 23).expect("ok");
        assert_eq!(
            (a.kind, a.dts_ms, a.data.clone()),
            (AudioPacketKind::CodedFrame, 23, vec![0x21, 0x00])
        );
        let a = parse_audio(vec![0x2F, 0xFF, 0xFB], 0).expect("ok");
        assert_eq!(
            (a.codec, a.data.clone()),
            (AudioCodec::Mp3, vec![0xFF, 0xFB])
        );
        let a = parse_audio(vec![0xB6, 1], 0).expect("ok");
        assert_eq!(a.codec, AudioCodec::Legacy(11));
        assert_eq!(a.codec.name(), "Speex");
        assert_eq!(
            parse_audio(vec![0xAF, 0x02], 0),
            Err(FlvError::UnknownAacPacketType(2))
        );
        assert_eq!(
            parse_audio(vec![0xAF], 0),
            Err(FlvError::Truncated("audio"))
        );
    }

    #[test]
    fn audio_enhanced() {
        let mut b = vec![0x90];
        b.extend_from_slice(b"Opus");
        b.extend_from_slice(b"OpusHead");
        let a = parse_audio(b, 0).expect("ok");
        assert!(a.enhanced);
        assert_eq!(
            (a.codec, a.kind),
            (AudioCodec::Opus, AudioPacketKind::SequenceHeader)
        );
        assert_eq!(a.data, b"OpusHead".to_vec());
        let mut b = vec![0x91];
        b.extend_from_slice(b"mp4a");
        b.push(1);
        let a = parse_audio(b, 0).expect("ok");
        assert_eq!(
            (a.codec, a.kind),
            (AudioCodec::Aac, AudioPacketKind::CodedFrame)
        );
        // Multitrack (5), one track, CodedFrames.
        let mut b = vec![0x95, 0x01];
        b.extend_from_slice(b"fLaC");
        b.extend_from_slice(&[0, 9]);
        let a = parse_audio(b, 0).expect("ok");
        assert_eq!((a.codec, a.data.clone()), (AudioCodec::Flac, vec![9]));
        let mut b = vec![0x93];
        b.extend_from_slice(b"Opus");
        assert_eq!(parse_audio(b, 0), Err(FlvError::UnknownAudioPacketType(3)));
    }
}
