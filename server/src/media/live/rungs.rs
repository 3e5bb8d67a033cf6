//! The transcoded rungs: the source decoded once, the ladder's encoders fed
//! from it, and their packets handed to each rung's [`VideoState`]. The
//! ladder mirrors the passthrough rung's keyframes, or (without one) leads
//! the stream's cuts and forces keyframes where they fall.

use super::timeline::{offer_cut, on_timeline, Ctx};
use super::video::VideoState;
use super::PipelineError;
use crate::media::ladder::{plan, Ladder};

/// Decoding plus the transcoded rungs.
pub(super) struct Transcode {
    pub(super) stream_index: usize,
    pub(super) time_base: (i32, i32),
    pub(super) fps: (i32, i32),
    pub(super) decoder: ffmpeg_next::decoder::Video,
    pub(super) ladder: Option<Ladder>,
    pub(super) outs: Vec<VideoState>,
    /// Mirror the passthrough rung's keyframes (else: the ladder leads the
    /// stream's cuts, and forces keyframes where they fall).
    pub(super) follow_source_keys: bool,
    pub(super) segment_90k: u64,
    pub(super) disabled: bool,
    /// 90 kHz ticks added to decoded timestamps (the period's offset).
    pub(super) offset: i64,
    /// Wall time spent encoding, and media time encoded, since the last report.
    pub(super) busy: std::time::Duration,
    pub(super) encoded_90k: u64,
    pub(super) last_pts: Option<u64>,
    pub(super) stream_id: String,
}

impl Transcode {
    pub(super) fn frames(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        let mut frame = ffmpeg_next::util::frame::video::Video::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            if self.disabled {
                continue;
            }
            let Some(ts) = frame.timestamp() else {
                continue;
            };
            let pts = on_timeline(ts, self.time_base, self.offset);
            if self.ladder.is_none() {
                let specs = plan(frame.width(), frame.height(), self.follow_source_keys);
                if specs.is_empty() {
                    // Passthrough already covers every rung this source gets.
                    self.disabled = true;
                    continue;
                }
                self.outs = specs
                    .iter()
                    .map(|spec| {
                        let mut v =
                            VideoState::new(usize::MAX, (1, 90_000), Vec::new(), Vec::new());
                        v.derive_dts = false;
                        v.bitrate = Some(spec.bitrate);
                        v.length_prefixed = Some(false);
                        v
                    })
                    .collect();
                self.ladder = Some(Ladder::new(&specs, self.fps)?);
            }
            let key = if self.follow_source_keys {
                frame.is_key()
            } else {
                // The ladder leads: a keyframe wherever a segment starts.
                offer_cut(ctx, pts)
            };
            let Some(ladder) = self.ladder.as_mut() else {
                continue;
            };
            let started = std::time::Instant::now();
            let packets = ladder.push(&frame, i64::try_from(pts).unwrap_or(i64::MAX), key)?;
            self.busy += started.elapsed();
            if let Some(last) = self.last_pts.replace(pts) {
                self.encoded_90k += pts.saturating_sub(last);
            }
            self.report_speed();
            self.deliver(packets, ctx);
        }
        Ok(())
    }

    /// Every segment's worth of media: how many times faster than real time the
    /// ladder encodes. Below 1.0 the stream falls behind: logged and exported.
    pub(super) fn report_speed(&mut self) {
        if self.encoded_90k < self.segment_90k.max(1) {
            return;
        }
        let media_s = self.encoded_90k as f64 / 90_000.0;
        let factor = media_s / self.busy.as_secs_f64().max(1e-6);
        // No stream label: /metrics is readable by anyone who can reach it,
        // and a private stream's id must not be (the log line names it).
        metrics::histogram!("onair_ladder_realtime_factor").record(factor);
        if factor < 1.0 {
            metrics::counter!("onair_ladder_behind_total").increment(1);
            tracing::warn!(stream = %self.stream_id, factor, "the ladder encodes slower than real time: viewers will fall behind");
        }
        self.busy = std::time::Duration::ZERO;
        self.encoded_90k = 0;
    }

    pub(super) fn deliver(&mut self, packets: Vec<Vec<ffmpeg_next::Packet>>, ctx: &Ctx<'_>) {
        for (out, packets) in self.outs.iter_mut().zip(packets) {
            for p in packets {
                if let Some(sample) = out.sample(&p) {
                    out.accept(sample, ctx);
                }
            }
        }
    }

    /// Decodes what the decoder still holds (end of a period or of the stream).
    pub(super) fn drain(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        let _ = self.decoder.send_eof();
        self.frames(ctx)
    }

    pub(super) fn finish(&mut self, ctx: &Ctx<'_>) -> Result<(), PipelineError> {
        self.drain(ctx)?;
        if let Some(ladder) = self.ladder.as_mut() {
            let packets = ladder.finish();
            self.deliver(packets, ctx);
        }
        for out in &mut self.outs {
            out.flush(ctx);
        }
        Ok(())
    }
}
