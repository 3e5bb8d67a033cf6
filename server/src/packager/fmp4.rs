//! CMAF fragmented MP4, written by hand: an init segment (`ftyp` + `moov`) per
//! track and a `moof` + `mdat` fragment per part. One track per file, as CMAF
//! tracks are. Pure functions: description and samples in, bytes out.

use bytes::Bytes;

use super::h264::SpsInfo;
use super::time::Timescale;

/// The codec of a track and what its decoder needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264, with its parameter sets (NAL units including header byte).
    Avc {
        /// Sequence parameter sets.
        sps: Vec<Bytes>,
        /// Picture parameter sets.
        pps: Vec<Bytes>,
        /// Parsed from the first SPS.
        info: SpsInfo,
    },
    /// AAC, with its AudioSpecificConfig.
    Aac {
        /// Sample rate in Hz.
        sample_rate: u32,
        /// Channel count.
        channels: u16,
        /// The AudioSpecificConfig bytes (ISO 14496-3).
        asc: Bytes,
    },
}

impl Codec {
    /// The RFC 6381 `CODECS` value, such as `avc1.64001f` or `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        match self {
            Codec::Avc { info, .. } => info.codec_string(),
            Codec::Aac { asc, .. } => {
                let object_type = asc.first().map(|b| b >> 3).unwrap_or(2);
                format!("mp4a.40.{object_type}")
            }
        }
    }
}

/// One track of a rendition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The track id used in `tkhd`, `trex` and `tfhd`.
    pub id: u32,
    /// Ticks per second of this track's timestamps.
    pub timescale: Timescale,
    /// Codec and configuration.
    pub codec: Codec,
}

/// One coded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Decode time in the track's timescale.
    pub dts: u64,
    /// Presentation time minus decode time, in ticks (B-frames make it non-zero).
    pub cts_offset: i32,
    /// How long it lasts, in ticks.
    pub duration: u32,
    /// A sync sample (an IDR frame; every audio frame).
    pub keyframe: bool,
    /// The payload: 4-byte length-prefixed NAL units for H.264, a raw frame for AAC.
    pub data: Bytes,
}

/// Writes boxes into a buffer; each box's size is patched in when it closes.
struct Writer {
    buf: Vec<u8>,
    open: Vec<usize>,
}

impl Writer {
    fn new() -> Self {
        Writer {
            buf: Vec::with_capacity(1024),
            open: Vec::new(),
        }
    }

    fn start(&mut self, kind: &[u8; 4]) {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(kind);
    }

    fn start_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) {
        self.start(kind);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    }

    fn end(&mut self) {
        // Every end() pairs with a start() in this module.
        let Some(at) = self.open.pop() else { return };
        let size = u32::try_from(self.buf.len() - at).unwrap_or(u32::MAX);
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
}

const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// The init segment for one track: `ftyp` + `moov` (with `mvex`, no samples).
pub fn init_segment(track: &Track) -> Bytes {
    let mut w = Writer::new();
    w.start(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41"] {
        w.bytes(brand);
    }
    w.end();

    w.start(b"moov");
    w.start_full(b"mvhd", 0, 0);
    w.u32(0); // creation time
    w.u32(0); // modification time
    w.u32(1000); // movie timescale
    w.u32(0); // duration: unknown (fragmented)
    w.u32(0x0001_0000); // rate 1.0
    w.u16(0x0100); // volume 1.0
    w.zeros(10);
    MATRIX.iter().for_each(|&m| w.u32(m));
    w.zeros(24); // pre_defined
    w.u32(track.id + 1); // next_track_ID
    w.end();

    write_trak(&mut w, track);

    w.start(b"mvex");
    w.start_full(b"trex", 0, 0);
    w.u32(track.id);
    w.u32(1); // default sample description index
    w.u32(0);
    w.u32(0);
    w.u32(0);
    w.end();
    w.end(); // mvex
    w.end(); // moov
    Bytes::from(w.buf)
}

fn write_trak(w: &mut Writer, track: &Track) {
    let (is_video, width, height) = match &track.codec {
        Codec::Avc { info, .. } => (true, info.width, info.height),
        Codec::Aac { .. } => (false, 0, 0),
    };
    w.start(b"trak");
    w.start_full(b"tkhd", 0, 0x3); // enabled, in movie
    w.u32(0);
    w.u32(0);
    w.u32(track.id);
    w.u32(0);
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate group
    w.u16(if is_video { 0 } else { 0x0100 });
    w.u16(0);
    MATRIX.iter().for_each(|&m| w.u32(m));
    w.u32(width << 16);
    w.u32(height << 16);
    w.end();

    w.start(b"mdia");
    w.start_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(track.timescale.get());
    w.u32(0);
    w.u16(0x55c4); // language "und"
    w.u16(0);
    w.end();
    w.start_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(if is_video { b"vide" } else { b"soun" });
    w.zeros(12);
    w.bytes(if is_video {
        b"Onair video\0"
    } else {
        b"Onair audio\0"
    });
    w.end();

    w.start(b"minf");
    if is_video {
        w.start_full(b"vmhd", 0, 1);
        w.zeros(8);
    } else {
        w.start_full(b"smhd", 0, 0);
        w.zeros(4);
    }
    w.end();
    w.start(b"dinf");
    w.start_full(b"dref", 0, 0);
    w.u32(1);
    w.start_full(b"url ", 0, 1); // media is in the same file
    w.end();
    w.end();
    w.end();

    w.start(b"stbl");
    w.start_full(b"stsd", 0, 0);
    w.u32(1);
    write_sample_entry(w, &track.codec);
    w.end();
    for kind in [b"stts", b"stsc", b"stco"] {
        w.start_full(kind, 0, 0);
        w.u32(0);
        w.end();
    }
    w.start_full(b"stsz", 0, 0);
    w.u32(0);
    w.u32(0);
    w.end();
    w.end(); // stbl
    w.end(); // minf
    w.end(); // mdia
    w.end(); // trak
}

fn write_sample_entry(w: &mut Writer, codec: &Codec) {
    match codec {
        Codec::Avc { sps, pps, info } => {
            w.start(b"avc1");
            w.zeros(6);
            w.u16(1); // data reference index
            w.zeros(16);
            w.u16(u16::try_from(info.width).unwrap_or(u16::MAX));
            w.u16(u16::try_from(info.height).unwrap_or(u16::MAX));
            w.u32(0x0048_0000); // 72 dpi
            w.u32(0x0048_0000);
            w.u32(0);
            w.u16(1); // frame count
            w.zeros(32); // compressor name
            w.u16(0x0018); // depth
            w.u16(0xffff); // pre_defined = -1
            w.start(b"avcC");
            w.u8(1);
            w.u8(info.profile);
            w.u8(info.constraints);
            w.u8(info.level);
            w.u8(0xff); // 4-byte NAL lengths
            w.u8(0xe0 | (sps.len().min(31) as u8));
            for s in sps.iter().take(31) {
                w.u16(u16::try_from(s.len()).unwrap_or(u16::MAX));
                w.bytes(s);
            }
            w.u8(pps.len().min(255) as u8);
            for p in pps.iter().take(255) {
                w.u16(u16::try_from(p.len()).unwrap_or(u16::MAX));
                w.bytes(p);
            }
            w.end();
            w.end();
        }
        Codec::Aac {
            sample_rate,
            channels,
            asc,
        } => {
            w.start(b"mp4a");
            w.zeros(6);
            w.u16(1);
            w.zeros(8);
            w.u16(*channels);
            w.u16(16);
            w.u16(0);
            w.u16(0);
            w.u32(sample_rate.min(&65535) << 16);
            w.start_full(b"esds", 0, 0);
            // ES_Descriptor
            let dsi_len = asc.len();
            let dcd_len = 13 + 2 + dsi_len;
            let es_len = 3 + 2 + dcd_len + 3;
            w.u8(0x03);
            w.u8(es_len as u8);
            w.u16(1); // ES_ID
            w.u8(0);
            // DecoderConfigDescriptor
            w.u8(0x04);
            w.u8(dcd_len as u8);
            w.u8(0x40); // MPEG-4 audio
            w.u8(0x15); // audio stream
            w.bytes(&[0, 0, 0]); // buffer size
            w.u32(0); // max bitrate
            w.u32(0); // avg bitrate
                      // DecoderSpecificInfo
            w.u8(0x05);
            w.u8(dsi_len as u8);
            w.bytes(asc);
            // SLConfigDescriptor
            w.u8(0x06);
            w.u8(1);
            w.u8(0x02);
            w.end();
            w.end();
        }
    }
}

/// `sample_flags` for a sync sample: depends on no other sample.
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` for a non-sync sample: depends on others, is not a sync sample.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// One `moof` + `mdat` holding `samples` (in decode order) of `track`.
/// `sequence` is the fragment's `mfhd` sequence number (1-based, increasing).
pub fn fragment(track: &Track, sequence: u32, samples: &[Sample]) -> Bytes {
    let base = samples.first().map(|s| s.dts).unwrap_or(0);
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut w = Writer::new();
    w.buf.reserve(payload + 64 + samples.len() * 16);
    w.start(b"moof");
    w.start_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.end();
    w.start(b"traf");
    w.start_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
    w.u32(track.id);
    w.end();
    w.start_full(b"tfdt", 1, 0);
    w.u64(base);
    w.end();
    // data offset, duration, size, flags, composition offset (signed, v1)
    w.start_full(b"trun", 1, 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800);
    w.u32(u32::try_from(samples.len()).unwrap_or(u32::MAX));
    let data_offset_at = w.buf.len();
    w.u32(0); // patched below
    for s in samples {
        w.u32(s.duration);
        w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
        w.u32(if s.keyframe {
            FLAGS_SYNC
        } else {
            FLAGS_NON_SYNC
        });
        w.u32(s.cts_offset as u32);
    }
    w.end(); // trun
    w.end(); // traf
    w.end(); // moof
    let moof_len = w.buf.len();
    let data_offset = u32::try_from(moof_len + 8).unwrap_or(u32::MAX);
    w.buf[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
    w.start(b"mdat");
    for s in samples {
        w.bytes(&s.data);
    }
    w.end();
    Bytes::from(w.buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks top-level boxes: (type, size).
    pub(crate) fn boxes(data: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= data.len() {
            let size =
                u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            out.push((
                String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned(),
                size,
            ));
            if size < 8 {
                break;
            }
            at += size;
        }
        assert_eq!(at, data.len(), "box sizes must add up to the file size");
        out
    }

    fn aac_track() -> Track {
        Track {
            id: 1,
            timescale: Timescale::new(48_000).expect("rate"),
            codec: Codec::Aac {
                sample_rate: 48_000,
                channels: 2,
                asc: Bytes::from_static(&[0x11, 0x90]),
            },
        }
    }

    #[test]
    fn init_and_fragment_have_the_cmaf_box_structure() {
        let track = aac_track();
        let init = init_segment(&track);
        let top: Vec<String> = boxes(&init).into_iter().map(|b| b.0).collect();
        assert_eq!(top, vec!["ftyp", "moov"]);
        assert_eq!(track.codec.codec_string(), "mp4a.40.2");

        let samples: Vec<Sample> = (0..3)
            .map(|i| Sample {
                dts: 1024 * i,
                cts_offset: 0,
                duration: 1024,
                keyframe: true,
                data: Bytes::from(vec![i as u8; 10 + i as usize]),
            })
            .collect();
        let frag = fragment(&track, 7, &samples);
        let top = boxes(&frag);
        assert_eq!(
            top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(),
            vec!["moof", "mdat"]
        );
        assert_eq!(top[1].1, 8 + 10 + 11 + 12);
        // trun's data offset points at the first sample byte
        let moof_len = top[0].1;
        let first_sample = &frag[moof_len + 8..moof_len + 18];
        assert!(first_sample.iter().all(|&b| b == 0));
    }
}
