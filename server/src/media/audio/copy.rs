//! The AAC copy path: the source's AAC-LC frames packaged as they are,
//! decoded only for the captions tap.

use super::*;

/// Packages the source's AAC-LC frames as they are: raw frames from
/// MP4/FLV/Matroska, or the frames inside ADTS headers from MPEG-TS.
/// Frames are numbered contiguously at the source's sample rate from the
/// first one (1024 samples each), which is what the encoder made.
pub struct AacCopier {
    pub(super) format: AudioFormat,
    /// The packets are ADTS (no AudioSpecificConfig in the stream header).
    adts: bool,
    emitted: u64,
    pub(super) first_pts: Option<i64>,
    /// Decoding for the captions tap only (nothing is re-encoded).
    decoder: Option<ffmpeg_next::decoder::Audio>,
    pub(super) tap: Option<PcmTap>,
    /// Frames dropped because their ADTS header disagreed with the format.
    refused: u64,
}

impl AacCopier {
    /// The source's AAC format if its stream can be copied: AAC-LC, mono or
    /// stereo, described by its AudioSpecificConfig or (MPEG-TS) by the
    /// parameters FFmpeg probed from its ADTS headers.
    pub fn source_format(params: &codec::Parameters) -> Option<(AudioFormat, bool)> {
        if params.id() != codec::Id::AAC {
            return None;
        }
        let extradata = extradata(params);
        let (format, adts) = if extradata.is_empty() {
            // SAFETY: reading plain fields of the stream's codec parameters.
            let (profile, rate, channels) = unsafe {
                let p = params.as_ptr();
                ((*p).profile, (*p).sample_rate, (*p).ch_layout.nb_channels)
            };
            // FF_PROFILE_AAC_LOW is 1 (object type 2); unknown (-99) is taken as LC,
            // and checked against every ADTS header.
            let object_type = if profile < 0 {
                AAC_LC
            } else {
                u8::try_from(profile + 1).ok()?
            };
            let channels = u8::try_from(channels).ok()?;
            let rate = u32::try_from(rate).ok()?;
            let asc = asc_for(object_type, rate, channels)?;
            (parse_asc(&asc)?, true)
        } else {
            (parse_asc(&extradata)?, false)
        };
        format.copyable().then(|| {
            (
                AudioFormat {
                    sample_rate: format.sample_rate,
                    channels: format.channels,
                    asc: format.asc,
                },
                adts,
            )
        })
    }

    /// A copier for a stream whose [`source_format`](Self::source_format) is
    /// `format`; with `tap`, it also decodes for the captions.
    pub fn new(
        params: codec::Parameters,
        format: AudioFormat,
        adts: bool,
        tap: bool,
    ) -> Result<Self, AudioError> {
        let decoder = if tap {
            Some(
                codec::context::Context::from_parameters(params)
                    .and_then(|c| c.decoder().audio())
                    .map_err(AudioError::Decoder)?,
            )
        } else {
            None
        };
        Ok(AacCopier {
            format,
            adts,
            emitted: 0,
            first_pts: None,
            decoder,
            tap: tap.then(PcmTap::new),
            refused: 0,
        })
    }

    /// The format it packages.
    pub fn format(&self) -> &AudioFormat {
        &self.format
    }

    pub(super) fn push(&mut self, packet: &Packet) -> Result<Vec<AacFrame>, AudioError> {
        let Some(data) = packet.data().filter(|d| !d.is_empty()) else {
            return Ok(Vec::new());
        };
        if self.first_pts.is_none() {
            self.first_pts = packet.pts().or(packet.dts());
        }
        let mut out = Vec::new();
        if self.adts {
            match split_adts(data) {
                Ok(frames) => {
                    for (h, raw) in frames {
                        let same = h.object_type == AAC_LC
                            && h.sample_rate == self.format.sample_rate
                            && h.channels == self.format.channels;
                        if same {
                            out.push(self.frame(Bytes::copy_from_slice(raw)));
                        } else {
                            self.refuse("an ADTS header changed the format");
                        }
                    }
                }
                Err(e) => self.refuse(&e.to_string()),
            }
        } else {
            out.push(self.frame(Bytes::copy_from_slice(data)));
        }
        if let (Some(decoder), Some(tap)) = (self.decoder.as_mut(), self.tap.as_mut()) {
            if decoder.send_packet(packet).is_ok() {
                let mut decoded = AudioFrame::empty();
                while decoder.receive_frame(&mut decoded).is_ok() {
                    with_layout(&mut decoded);
                    tap.push(&decoded)?;
                }
            }
        }
        Ok(out)
    }

    fn frame(&mut self, data: Bytes) -> AacFrame {
        let pts = self.emitted * AAC_FRAME as u64;
        self.emitted += 1;
        AacFrame { pts, data }
    }

    fn refuse(&mut self, why: &str) {
        self.refused += 1;
        if self.refused == 1 || self.refused.is_power_of_two() {
            tracing::warn!(why, dropped = self.refused, "dropped a source AAC frame");
        }
    }
}
