//! The transcoded ladder: decoded frames in, one H.264 stream per rung out.
//! The input is decoded once and scaled per rung. Keyframes are forced at the
//! same media times on every rung, so segment boundaries line up across the
//! ladder (and with a passthrough rung, whose keyframes they mirror).

use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::util::frame::video::Video as VideoFrame;
use ffmpeg_next::{codec, encoder, picture, Dictionary, Packet};

/// Standard rung heights; the source height is a rung too.
pub const STANDARD_HEIGHTS: [u32; 4] = [1080, 720, 480, 360];

/// One output rung.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RungSpec {
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Target bitrate, bits per second (also the VBV max rate).
    pub bitrate: u64,
}

/// Bitrate for a rung: about 0.09 bits per pixel per frame at 30 fps,
/// clamped to 400 kbit/s … 6 Mbit/s.
pub fn bitrate_for(width: u32, height: u32) -> u64 {
    (u64::from(width) * u64::from(height) * 30 * 9 / 100).clamp(400_000, 6_000_000)
}

fn even(v: u64) -> u32 {
    (u32::try_from(v).unwrap_or(u32::MAX) / 2 * 2).max(2)
}

/// The ladder for a source: its own height (unless `skip_source`, when the
/// source is passed through), plus the standard heights below it.
pub fn plan(src_width: u32, src_height: u32, skip_source: bool) -> Vec<RungSpec> {
    let mut heights: Vec<u32> = Vec::new();
    if !skip_source {
        heights.push(src_height);
    }
    heights.extend(STANDARD_HEIGHTS.iter().copied().filter(|&h| h < src_height));
    heights.dedup();
    heights
        .into_iter()
        .map(|h| {
            let height = even(u64::from(h));
            // The nearest even width that keeps the aspect ratio (1280x720 -> 854x480).
            let den = 2 * u64::from(src_height.max(1));
            let width = even(2 * ((u64::from(src_width) * u64::from(height) + den / 2) / den));
            RungSpec {
                width,
                height,
                bitrate: bitrate_for(width, height),
            }
        })
        .collect()
}

/// Encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LadderError {
    /// libx264 is missing or refused its settings.
    #[error("cannot set up the H.264 encoder: {0}")]
    Encoder(ffmpeg_next::Error),
    /// Scaling failed.
    #[error("cannot scale the video: {0}")]
    Scale(ffmpeg_next::Error),
}

struct Rung {
    spec: RungSpec,
    scaler: Option<(scaling::Context, (Pixel, u32, u32))>,
    encoder: encoder::Video,
}

/// Encodes frames into every rung. Timestamps are 90 kHz ticks.
pub struct Ladder {
    rungs: Vec<Rung>,
}

impl Ladder {
    /// Opens one libx264 encoder per rung. `fps` is the nominal frame rate
    /// (for rate control; timestamps stay as they come).
    pub fn new(specs: &[RungSpec], fps: (i32, i32)) -> Result<Self, LadderError> {
        let x264 = encoder::find_by_name("libx264")
            .ok_or(LadderError::Encoder(ffmpeg_next::Error::EncoderNotFound))?;
        let mut rungs = Vec::new();
        for spec in specs {
            let mut enc = codec::context::Context::new_with_codec(x264)
                .encoder()
                .video()
                .map_err(LadderError::Encoder)?;
            enc.set_width(spec.width);
            enc.set_height(spec.height);
            enc.set_format(Pixel::YUV420P);
            enc.set_time_base((1, 90_000));
            enc.set_frame_rate(Some(fps));
            enc.set_bit_rate(spec.bitrate as usize);
            enc.set_max_bit_rate(spec.bitrate as usize);
            enc.set_max_b_frames(0);
            // Keyframes come only when forced (segment boundaries); a long GOP otherwise.
            enc.set_gop(600);
            let mut opts = Dictionary::new();
            opts.set("preset", "veryfast");
            opts.set("tune", "zerolatency");
            opts.set("bufsize", &spec.bitrate.to_string());
            opts.set("forced-idr", "1");
            opts.set("x264-params", "scenecut=0:repeat-headers=1:bframes=0");
            let encoder = enc.open_as_with(x264, opts).map_err(LadderError::Encoder)?;
            rungs.push(Rung {
                spec: *spec,
                scaler: None,
                encoder,
            });
        }
        Ok(Ladder { rungs })
    }

    /// The rungs, in order.
    pub fn specs(&self) -> Vec<RungSpec> {
        self.rungs.iter().map(|r| r.spec).collect()
    }

    /// Encodes one decoded frame at `pts_90k` on every rung; `keyframe` forces
    /// an IDR. Returns each rung's finished packets (Annex B, 90 kHz).
    pub fn push(
        &mut self,
        frame: &VideoFrame,
        pts_90k: i64,
        keyframe: bool,
    ) -> Result<Vec<Vec<Packet>>, LadderError> {
        let mut out = Vec::with_capacity(self.rungs.len());
        for rung in &mut self.rungs {
            let src = (frame.format(), frame.width(), frame.height());
            if rung.scaler.as_ref().is_none_or(|(_, key)| *key != src) {
                // (Re)create the scaler: the first frame, or the source size changed.
                let ctx = scaling::Context::get(
                    src.0,
                    src.1,
                    src.2,
                    Pixel::YUV420P,
                    rung.spec.width,
                    rung.spec.height,
                    scaling::Flags::BILINEAR,
                )
                .map_err(LadderError::Scale)?;
                rung.scaler = Some((ctx, src));
            }
            let mut scaled = VideoFrame::empty();
            if let Some((scaler, _)) = rung.scaler.as_mut() {
                scaler.run(frame, &mut scaled).map_err(LadderError::Scale)?;
            }
            scaled.set_pts(Some(pts_90k));
            scaled.set_kind(if keyframe {
                picture::Type::I
            } else {
                picture::Type::None
            });
            rung.encoder
                .send_frame(&scaled)
                .map_err(LadderError::Encoder)?;
            out.push(receive(&mut rung.encoder));
        }
        Ok(out)
    }

    /// Flushes every encoder at end of stream.
    pub fn finish(&mut self) -> Vec<Vec<Packet>> {
        self.rungs
            .iter_mut()
            .map(|r| {
                let _ = r.encoder.send_eof();
                receive(&mut r.encoder)
            })
            .collect()
    }
}

fn receive(enc: &mut encoder::Video) -> Vec<Packet> {
    let mut packets = Vec::new();
    let mut p = Packet::empty();
    while enc.receive_packet(&mut p).is_ok() {
        packets.push(std::mem::replace(&mut p, Packet::empty()));
    }
    packets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_plans_follow_the_source() {
        let heights = |w, h, skip| {
            plan(w, h, skip)
                .into_iter()
                .map(|r| (r.width, r.height))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            heights(1280, 720, false),
            vec![(1280, 720), (854, 480), (640, 360)]
        );
        assert_eq!(heights(1280, 720, true), vec![(854, 480), (640, 360)]);
        assert_eq!(
            heights(1920, 1080, false),
            vec![(1920, 1080), (1280, 720), (854, 480), (640, 360)]
        );
        assert_eq!(heights(640, 360, false), vec![(640, 360)]);
        assert_eq!(heights(320, 240, false), vec![(320, 240)]);
        // odd sizes from screen sharing become even
        assert_eq!(
            heights(1001, 563, false),
            vec![(1000, 562), (854, 480), (640, 360)]
        );
        assert!(plan(1280, 720, false)
            .windows(2)
            .all(|w| w[0].bitrate >= w[1].bitrate));
    }
}
