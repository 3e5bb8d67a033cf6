//! The recording's progressive MP4 and its thumbnail, with FFmpeg (blocking:
//! run on a blocking thread).
//!
//! [`remux`] copies the top video rendition and the audio rendition into one
//! MP4 with `moov` before `mdat` (`movflags=+faststart`), with no re-encode.
//! Each input is a list of fragmented MP4 files, one per init segment run
//! (init segment + its segments concatenated), played one after another.
//! Timestamps are kept where they continue; where a later file starts earlier
//! than the previous one ended (a new session restarts media time), it is
//! moved to follow on.
//!
//! [`thumbnail`] decodes a keyframe near the start and encodes a JPEG.

use std::path::{Path, PathBuf};

use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{codec, encoder, media, Dictionary, Packet, Rational};

/// Making the MP4 or the thumbnail failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Mp4Error {
    /// An input file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Input {
        /// The file.
        path: String,
        /// What FFmpeg said.
        source: ffmpeg_next::Error,
    },
    /// An input holds no stream of the expected kind.
    #[error("{0} has no usable stream")]
    NoStream(String),
    /// Writing the MP4 failed.
    #[error("cannot write the MP4: {0}")]
    Output(ffmpeg_next::Error),
    /// Decoding or encoding the thumbnail failed.
    #[error("cannot make the thumbnail: {0}")]
    Thumbnail(String),
    /// Nothing to put in the MP4.
    #[error("the recording has no media")]
    Empty,
}

/// What [`remux`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Report {
    /// Media duration, ms (the longer track).
    pub duration_ms: u64,
    /// Packets written.
    pub packets: u64,
}

/// One track's input: its files in play order.
struct Source {
    files: Vec<PathBuf>,
    next_file: usize,
    input: Option<(ffmpeg_next::format::context::Input, usize, Rational)>,
    /// Added to this file's timestamps (input time base).
    offset: i64,
    /// End of the last packet, in the output stream's time base.
    end_out: i64,
    out_index: usize,
    out_tb: Rational,
    /// The next packet, rescaled to the output time base.
    peeked: Option<Packet>,
    /// First packet of the current file not seen yet.
    file_start: bool,
}

fn open(
    path: &Path,
    kind: media::Type,
) -> Result<(ffmpeg_next::format::context::Input, usize, Rational), Mp4Error> {
    let input = ffmpeg_next::format::input(path).map_err(|source| Mp4Error::Input {
        path: path.display().to_string(),
        source,
    })?;
    let (index, tb) = {
        let s = input
            .streams()
            .best(kind)
            .ok_or_else(|| Mp4Error::NoStream(path.display().to_string()))?;
        (s.index(), s.time_base())
    };
    Ok((input, index, tb))
}

fn rescale(v: i64, from: Rational, to: Rational) -> i64 {
    // v * from / to, rounded to nearest, in i128.
    let num = i128::from(v) * i128::from(from.numerator()) * i128::from(to.denominator());
    let den = i128::from(from.denominator()) * i128::from(to.numerator());
    if den == 0 {
        return v;
    }
    let q = (num + den / 2).div_euclid(den);
    i64::try_from(q).unwrap_or(i64::MAX)
}

impl Source {
    /// Reads the next packet of this track (across files) into `peeked`.
    fn advance(&mut self, kind: media::Type) -> Result<(), Mp4Error> {
        self.peeked = None;
        loop {
            if self.input.is_none() {
                let Some(path) = self.files.get(self.next_file) else {
                    return Ok(());
                };
                self.next_file += 1;
                self.input = Some(open(path, kind)?);
                self.file_start = true;
            }
            let Some((input, index, tb)) = self.input.as_mut() else {
                continue;
            };
            let (index, tb) = (*index, *tb);
            let mut next = None;
            for (stream, packet) in input.packets() {
                if stream.index() == index {
                    next = Some(packet);
                    break;
                }
            }
            let Some(mut packet) = next else {
                self.input = None;
                continue;
            };
            if self.file_start {
                self.file_start = false;
                let first = packet.dts().or(packet.pts()).unwrap_or(0);
                let first_out = rescale(first, tb, self.out_tb);
                // A file that starts before the previous one ended follows on.
                self.offset = if first_out < self.end_out && self.next_file > 1 {
                    rescale(self.end_out, self.out_tb, tb) - first
                } else {
                    0
                };
            }
            let shift = |t: Option<i64>| t.map(|t| rescale(t + self.offset, tb, self.out_tb));
            packet.set_pts(shift(packet.pts()));
            packet.set_dts(shift(packet.dts()));
            packet.set_duration(rescale(packet.duration(), tb, self.out_tb));
            packet.set_position(-1);
            packet.set_stream(self.out_index);
            let end = packet.dts().or(packet.pts()).unwrap_or(self.end_out) + packet.duration();
            self.end_out = self.end_out.max(end);
            self.peeked = Some(packet);
            return Ok(());
        }
    }

    fn time_s(&self) -> Option<f64> {
        let p = self.peeked.as_ref()?;
        let t = p.dts().or(p.pts())?;
        Some(t as f64 * f64::from(self.out_tb))
    }
}

/// Copies `video` (and `audio`, if any) into a progressive MP4 at `out`.
/// `total_ms` is the expected duration, for `progress` (called with 0–100).
pub fn remux(
    video: &[PathBuf],
    audio: &[PathBuf],
    out: &Path,
    total_ms: u64,
    progress: &mut dyn FnMut(u8),
) -> Result<Mp4Report, Mp4Error> {
    let mut tracks: Vec<(media::Type, Vec<PathBuf>)> = Vec::new();
    if !video.is_empty() {
        tracks.push((media::Type::Video, video.to_vec()));
    }
    if !audio.is_empty() {
        tracks.push((media::Type::Audio, audio.to_vec()));
    }
    if tracks.is_empty() {
        return Err(Mp4Error::Empty);
    }
    let mut octx = ffmpeg_next::format::output_as(out, "mp4").map_err(Mp4Error::Output)?;
    let mut sources = Vec::new();
    for (i, (kind, files)) in tracks.iter().enumerate() {
        let first = files.first().ok_or(Mp4Error::Empty)?;
        let (input, index, tb) = open(first, *kind)?;
        let params = input
            .stream(index)
            .ok_or_else(|| Mp4Error::NoStream(first.display().to_string()))?
            .parameters();
        let mut ost = octx
            .add_stream(encoder::find(codec::Id::None))
            .map_err(Mp4Error::Output)?;
        ost.set_parameters(params);
        ost.set_time_base(tb);
        // SAFETY: clearing the codec tag of the stream we just added, so the
        // MP4 muxer picks its own.
        unsafe {
            (*ost.parameters().as_mut_ptr()).codec_tag = 0;
        }
        sources.push(Source {
            files: files.clone(),
            next_file: 0,
            input: None,
            offset: 0,
            end_out: 0,
            out_index: i,
            out_tb: tb,
            peeked: None,
            file_start: true,
        });
    }
    let mut opts = Dictionary::new();
    opts.set("movflags", "+faststart");
    octx.write_header_with(opts).map_err(Mp4Error::Output)?;
    for (i, s) in sources.iter_mut().enumerate() {
        if let Some(st) = octx.stream(i) {
            s.out_tb = st.time_base();
        }
        s.advance(tracks[i].0)?;
    }
    let mut packets = 0u64;
    let mut last_percent = 0u8;
    loop {
        // The track whose next packet comes first.
        let pick = sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.time_s().map(|t| (i, t)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, t)) = pick else { break };
        if let Some(p) = sources[i].peeked.take() {
            p.write_interleaved(&mut octx).map_err(Mp4Error::Output)?;
            packets += 1;
        }
        sources[i].advance(tracks[i].0)?;
        if total_ms > 0 {
            let percent = ((t * 1000.0) / total_ms as f64 * 100.0).clamp(0.0, 99.0) as u8;
            if percent > last_percent {
                last_percent = percent;
                progress(percent);
            }
        }
    }
    octx.write_trailer().map_err(Mp4Error::Output)?;
    let duration_ms = sources
        .iter()
        .map(|s| {
            let ms = rescale(s.end_out, s.out_tb, Rational::new(1, 1000));
            u64::try_from(ms).unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    progress(100);
    Ok(Mp4Report {
        duration_ms,
        packets,
    })
}

/// Width of thumbnails, pixels (the height follows the picture, rounded to even).
pub const THUMBNAIL_WIDTH: u32 = 320;

/// A JPEG of a keyframe near the start of `video` (a fragmented MP4 file):
/// the first keyframe at or after `near_ms`, else the last one before it.
pub fn thumbnail(video: &Path, near_ms: u64) -> Result<Vec<u8>, Mp4Error> {
    let fail = |what: &str, e: ffmpeg_next::Error| Mp4Error::Thumbnail(format!("{what}: {e}"));
    let (mut input, index, tb) = open(video, media::Type::Video)?;
    let params = input
        .stream(index)
        .ok_or_else(|| Mp4Error::NoStream(video.display().to_string()))?
        .parameters();
    let mut decoder = codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| fail("decoder", e))?;
    let near = rescale(
        i64::try_from(near_ms).unwrap_or(0),
        Rational::new(1, 1000),
        tb,
    );
    let mut chosen: Option<ffmpeg_next::frame::Video> = None;
    let mut frame = ffmpeg_next::frame::Video::empty();
    for (stream, packet) in input.packets() {
        if stream.index() != index || !packet.is_key() {
            continue;
        }
        let at = packet.pts().or(packet.dts()).unwrap_or(0);
        // A keyframe decodes on its own: flush between them.
        decoder
            .send_packet(&packet)
            .map_err(|e| fail("decode", e))?;
        let _ = decoder.send_eof();
        while decoder.receive_frame(&mut frame).is_ok() {
            chosen = Some(frame.clone());
        }
        decoder.flush();
        if chosen.is_some() && at >= near {
            break;
        }
    }
    let src = chosen.ok_or_else(|| Mp4Error::Thumbnail("no keyframe decoded".into()))?;
    let width = THUMBNAIL_WIDTH.min(src.width().max(2)) & !1;
    let height = ((u64::from(src.height()) * u64::from(width) / u64::from(src.width().max(1)))
        as u32)
        .max(2)
        & !1;
    let mut scaler = scaling::Context::get(
        src.format(),
        src.width(),
        src.height(),
        Pixel::YUVJ420P,
        width,
        height,
        scaling::Flags::BILINEAR,
    )
    .map_err(|e| fail("scale", e))?;
    let mut scaled = ffmpeg_next::frame::Video::empty();
    scaler
        .run(&src, &mut scaled)
        .map_err(|e| fail("scale", e))?;
    scaled.set_pts(Some(0));
    let mjpeg = encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| Mp4Error::Thumbnail("no JPEG encoder".into()))?;
    let mut enc = codec::context::Context::new_with_codec(mjpeg)
        .encoder()
        .video()
        .map_err(|e| fail("encoder", e))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base((1, 25));
    let mut enc = enc.open_as(mjpeg).map_err(|e| fail("encoder", e))?;
    enc.send_frame(&scaled).map_err(|e| fail("encode", e))?;
    let _ = enc.send_eof();
    let mut packet = Packet::empty();
    enc.receive_packet(&mut packet)
        .map_err(|e| fail("encode", e))?;
    packet
        .data()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Mp4Error::Thumbnail("the encoder gave no data".into()))
}

#[cfg(test)]
mod tests {
    use super::rescale;
    use ffmpeg_next::Rational;

    #[test]
    fn rescale_rounds_between_time_bases() {
        assert_eq!(
            rescale(90_000, Rational::new(1, 90_000), Rational::new(1, 1000)),
            1000
        );
        assert_eq!(
            rescale(1024, Rational::new(1, 48_000), Rational::new(1, 1000)),
            21
        );
        assert_eq!(
            rescale(-3000, Rational::new(1, 90_000), Rational::new(1, 1000)),
            -33
        );
        assert_eq!(rescale(5, Rational::new(1, 1), Rational::new(0, 1)), 5);
    }
}
