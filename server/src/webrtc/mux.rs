//! One WHIP session's muxing: its depacketized frames, placed on one
//! timeline ([`Timeline`]), into MPEG-TS (H.264) or live WebM (VP8) by
//! FFmpeg's muxers, and from there into the stream's live session through
//! [`EncoderPublish`], as SRT's bytes go.

use super::*;

/// Media timestamps: each track's RTP time from its first frame, placed on
/// the session's timeline by that first frame's arrival (RTP clocks of
/// different tracks start at unrelated values). Integer ticks of the track's
/// clock.
#[derive(Debug, Default)]
pub struct Timeline {
    start: Option<Instant>,
    /// Per track (video, audio): its first RTP time and that frame's ticks.
    first: [Option<(u64, i64)>; 2],
}

impl Timeline {
    /// The frame's timestamp in its track's clock (90 kHz video, 48 kHz audio).
    pub fn ticks(&mut self, track: Track, rtp_time: u64, arrived: Instant) -> i64 {
        let (k, hz) = match track {
            Track::Video => (0, VIDEO_HZ),
            Track::Audio => (1, AUDIO_HZ),
        };
        let start = *self.start.get_or_insert(arrived);
        let (first_rtp, first_ticks) = *self.first[k].get_or_insert_with(|| {
            let us = arrived.saturating_duration_since(start).as_micros();
            let ticks = us.saturating_mul(hz as u128) / 1_000_000;
            (rtp_time, i64::try_from(ticks).unwrap_or(i64::MAX))
        });
        let delta = i128::from(rtp_time) - i128::from(first_rtp);
        let ts = i128::from(first_ticks) + delta;
        i64::try_from(ts.max(0)).unwrap_or(i64::MAX)
    }
}

/// One session's frames into MPEG-TS, into the live session.
pub(super) async fn mux_task(
    endpoint: Arc<Endpoint>,
    id: SessionId,
    stream: String,
    audio: bool,
    mut frames: mpsc::Receiver<Media>,
) {
    let hub = endpoint.hub.clone();
    let stop = |why: &str| {
        tracing::info!(stream = %stream, session = id, why, "WHIP publish stopped");
        endpoint.forget(id);
        let _ = endpoint.commands.send(Command::Remove { id, ended: false });
    };
    let mut publish: Option<(EncoderPublish, FrameMux)> = None;
    let mut peer = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut timeline = Timeline::default();
    while let Some(media) = frames.recv().await {
        match media {
            Media::Connected(from) => peer = from,
            Media::Frame(frame) => {
                if publish.is_none() {
                    // The first frame is the first keyframe (the table holds
                    // back everything before it): its codec picks the
                    // container, and the publish starts.
                    let video = match frame.codec {
                        _ if frame.kind != MediaKind::Video => continue,
                        Codec::H264 => VideoCodec::H264,
                        Codec::Vp8 => match vp8_keyframe_size(&frame.data) {
                            Some((width, height)) => VideoCodec::Vp8 { width, height },
                            None => continue,
                        },
                        _ => continue,
                    };
                    let (mux, header) = match FrameMux::open(video, audio) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot open the muxer");
                            refused(Transport::Whip, Reason::Internal);
                            return stop("muxer");
                        }
                    };
                    match EncoderPublish::start(&hub, Transport::Whip, &stream, peer, Some(header))
                        .await
                    {
                        Ok(p) => publish = Some((p, mux)),
                        Err(r) => {
                            refused(Transport::Whip, r.reason);
                            return stop(&r.why);
                        }
                    }
                }
                let Some((p, mux)) = publish.as_mut() else {
                    continue;
                };
                let track = if frame.kind == MediaKind::Video {
                    Track::Video
                } else if audio {
                    Track::Audio
                } else {
                    continue;
                };
                let ts = timeline.ticks(track, frame.rtp_time, frame.arrived);
                let bytes = match mux.write(track, ts, frame.keyframe, &frame.data) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(stream = %stream, error = %e, "WHIP frame not muxed");
                        continue;
                    }
                };
                if bytes.is_empty() {
                    continue;
                }
                let len = frame.data.len() as u64;
                let packets = len.div_ceil(PACKET_PAYLOAD).max(1);
                let wire = len.saturating_add(packets.saturating_mul(PACKET_OVERHEAD));
                if let Err(r) = p.send(bytes, wire).await {
                    refused(Transport::Whip, r.reason);
                    return stop(&r.why);
                }
            }
            Media::End => {
                if let Some((mut p, mut mux)) = publish.take() {
                    if let Ok(last) = mux.finish() {
                        if !last.is_empty() {
                            let _ = p.send(last, 0).await;
                        }
                    }
                    p.end(&hub).await;
                }
                return;
            }
        }
    }
    // The socket task dropped the session: the publisher is gone; dropping
    // the publish detaches it (the resume grace applies).
}
