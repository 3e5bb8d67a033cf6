//! AAC bitstream framing, sans IO: the AudioSpecificConfig (ISO 14496-3
//! 1.6.2.1) that MP4, FLV and Matroska carry as the stream's extradata, and
//! the ADTS headers MPEG-TS puts before every frame (ISO 14496-3 1.A.2).
//! Enough to copy a source's AAC into fMP4 unchanged: the config goes into
//! the init segment's `esds`, the raw frames into the media segments.

use bytes::Bytes;

/// The sampling frequencies an AudioSpecificConfig or ADTS header indexes.
const RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// AAC-LC, the only object type copied (what OBS, FFmpeg and browsers send,
/// and what every HLS player decodes).
pub const AAC_LC: u8 = 2;

/// A source's AAC as its AudioSpecificConfig describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFormat {
    /// The AudioSpecificConfig bytes, exactly as the source sent them.
    pub asc: Bytes,
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling frequency, Hz.
    pub sample_rate: u32,
    /// Channel configuration (1 = mono, 2 = stereo; 0 = defined in the stream).
    pub channels: u8,
}

impl AacFormat {
    /// Whether it can be copied into the rendition as it is: AAC-LC, mono or
    /// stereo, at a listed sampling frequency.
    pub fn copyable(&self) -> bool {
        self.object_type == AAC_LC
            && (1..=2).contains(&self.channels)
            && RATES.contains(&self.sample_rate)
    }
}

/// Reads bits most significant first.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.at / 8)?;
            let bit = (byte >> (7 - self.at % 8)) & 1;
            v = (v << 1) | u32::from(bit);
            self.at += 1;
        }
        Some(v)
    }
}

/// Parses the start of an AudioSpecificConfig (object type, sampling
/// frequency, channel configuration). `None` if it is truncated.
pub fn parse_asc(asc: &[u8]) -> Option<AacFormat> {
    let mut b = Bits { data: asc, at: 0 };
    let mut object_type = b.read(5)?;
    if object_type == 31 {
        object_type = 32 + b.read(6)?;
    }
    let index = b.read(4)?;
    let sample_rate = if index == 15 {
        b.read(24)?
    } else {
        *RATES.get(usize::try_from(index).ok()?)?
    };
    let channels = b.read(4)?;
    Some(AacFormat {
        asc: Bytes::copy_from_slice(asc),
        object_type: u8::try_from(object_type).ok()?,
        sample_rate,
        channels: u8::try_from(channels).ok()?,
    })
}

/// The two-byte AudioSpecificConfig for `object_type` at a listed
/// `sample_rate` with `channels` (1..=7), as an encoder writes it.
pub fn asc_for(object_type: u8, sample_rate: u32, channels: u8) -> Option<Bytes> {
    let index = RATES.iter().position(|&r| r == sample_rate)?;
    if object_type == 0 || object_type >= 31 || !(1..=7).contains(&channels) {
        return None;
    }
    let index = u16::try_from(index).ok()?;
    let v: u16 = (u16::from(object_type) << 11) | (index << 7) | (u16::from(channels) << 3);
    Some(Bytes::copy_from_slice(&v.to_be_bytes()))
}

/// One ADTS frame's header fields that matter for copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adts {
    /// Audio object type (profile + 1).
    pub object_type: u8,
    /// Sampling frequency, Hz.
    pub sample_rate: u32,
    /// Channel configuration.
    pub channels: u8,
    /// Raw data blocks in the frame (1 in practice; more are not copied).
    pub blocks: u8,
}

/// An ADTS packet could not be split into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdtsError {
    /// No sync word where a frame should start, or a reserved field.
    #[error("not an ADTS frame")]
    NotAdts,
    /// A frame's length runs past the packet or is shorter than its header.
    #[error("truncated ADTS frame")]
    Truncated,
    /// The frame holds more than one raw data block.
    #[error("ADTS frames with several raw data blocks are not copied")]
    Blocks,
}

/// Splits a packet of one or more ADTS frames into (header, raw frame)
/// pairs; the whole packet must be frames.
pub fn split_adts(data: &[u8]) -> Result<Vec<(Adts, &[u8])>, AdtsError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let h = rest.get(..7).ok_or(AdtsError::Truncated)?;
        if h[0] != 0xff || h[1] & 0xf6 != 0xf0 {
            return Err(AdtsError::NotAdts);
        }
        let protection_absent = h[1] & 1 == 1;
        let object_type = (h[2] >> 6) + 1;
        let index = usize::from((h[2] >> 2) & 0x0f);
        let sample_rate = *RATES.get(index).ok_or(AdtsError::NotAdts)?;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let length =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        let blocks = (h[6] & 0x03) + 1;
        let header = if protection_absent { 7 } else { 9 };
        if length < header {
            return Err(AdtsError::Truncated);
        }
        if blocks != 1 {
            return Err(AdtsError::Blocks);
        }
        let frame = rest.get(header..length).ok_or(AdtsError::Truncated)?;
        out.push((
            Adts {
                object_type,
                sample_rate,
                channels,
                blocks,
            },
            frame,
        ));
        rest = &rest[length..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_configs_encoders_write() {
        // FFmpeg's AAC encoder: LC 48 kHz stereo, LC 44.1 kHz mono.
        let f = parse_asc(&[0x11, 0x90]).unwrap();
        assert_eq!((f.object_type, f.sample_rate, f.channels), (2, 48_000, 2));
        assert!(f.copyable());
        let f = parse_asc(&[0x12, 0x08, 0x56, 0xe5, 0x00]).unwrap();
        assert_eq!((f.object_type, f.sample_rate, f.channels), (2, 44_100, 1));
        assert_eq!(&f.asc[..], &[0x12, 0x08, 0x56, 0xe5, 0x00]);
        // HE-AAC (SBR, object type 5) is not copied.
        let f = parse_asc(&[0x2b, 0x92, 0x08, 0x00]).unwrap();
        assert_eq!(f.object_type, 5);
        assert!(!f.copyable());
        // An escaped object type and an explicit frequency.
        let f = parse_asc(&[0xf8, 0x1e, 0x01, 0x77, 0x00, 0x40]).unwrap();
        assert_eq!(f.object_type, 32);
        assert_eq!((f.sample_rate, f.channels), (48_000, 2));
        assert!(parse_asc(&[0x11]).is_none());
        assert!(parse_asc(&[]).is_none());
    }

    #[test]
    fn builds_the_config_it_parses() {
        for (rate, ch) in [(48_000, 2), (44_100, 1), (44_100, 2), (8_000, 1)] {
            let asc = asc_for(AAC_LC, rate, ch).unwrap();
            let f = parse_asc(&asc).unwrap();
            assert_eq!((f.object_type, f.sample_rate, f.channels), (2, rate, ch));
        }
        assert_eq!(&asc_for(2, 48_000, 2).unwrap()[..], &[0x11, 0x90]);
        assert!(asc_for(2, 44_000, 2).is_none());
        assert!(asc_for(2, 48_000, 0).is_none());
    }

    fn adts(len_payload: usize, crc: bool) -> Vec<u8> {
        let header = if crc { 9 } else { 7 };
        let len = header + len_payload;
        // LC (profile 1), 44.1 kHz (index 4), stereo.
        let mut h = vec![
            0xff,
            if crc { 0xf0 } else { 0xf1 },
            (1 << 6) | (4 << 2),
            (2 << 6) | ((len >> 11) & 0x3) as u8,
            ((len >> 3) & 0xff) as u8,
            (((len & 7) << 5) as u8) | 0x1f,
            0xfc,
        ];
        if crc {
            h.extend([0xab, 0xcd]);
        }
        h.extend((0..len_payload).map(|i| i as u8));
        h
    }

    #[test]
    fn splits_adts_packets_into_raw_frames() {
        let mut two = adts(10, false);
        two.extend(adts(300, true));
        let frames = split_adts(&two).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            frames[0].1,
            &(0..10).map(|i| i as u8).collect::<Vec<_>>()[..]
        );
        assert_eq!(frames[1].1.len(), 300);
        assert_eq!(
            frames[0].0,
            Adts {
                object_type: 2,
                sample_rate: 44_100,
                channels: 2,
                blocks: 1
            }
        );
    }

    #[test]
    fn refuses_what_is_not_whole_adts() {
        let one = adts(10, false);
        assert_eq!(split_adts(&one[..12]), Err(AdtsError::Truncated));
        assert_eq!(split_adts(&[0x21, 0x10, 0x05]), Err(AdtsError::Truncated));
        assert_eq!(split_adts(&[0x21; 16]), Err(AdtsError::NotAdts));
        let mut blocks = adts(10, false);
        blocks[6] |= 0x01;
        assert_eq!(split_adts(&blocks), Err(AdtsError::Blocks));
        let mut short = adts(0, false);
        short[4] = 0;
        short[5] &= 0x1f;
        assert_eq!(split_adts(&short), Err(AdtsError::Truncated));
        assert_eq!(split_adts(&[]), Ok(Vec::new()));
    }
}
