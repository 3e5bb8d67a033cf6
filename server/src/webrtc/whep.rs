//! WHEP playback: `POST /api/v1/streams/{id}/whep` with a viewer's
//! (`recvonly`) SDP offer. The viewer's `Rtc` joins the socket task's table
//! as a viewer of the stream's WHIP publisher, whose media it is forwarded
//! as received ([`table`]: RTP in, RTP out, no decoding).
//!
//! Access (public, unlisted, or private with the playback token) is checked
//! by the caller with the LL-HLS playback gate's rule; everything after it
//! is here. Each refusal is counted in
//! `onair_playback_refusals_total{transport="whep",reason}`;
//! `onair_webrtc_viewers` is the number of viewers held.
//!
//! A WHIP source is forwarded as received. Any other live source (RTMP,
//! SRT, WebSocket) is fed from its pipeline (`fed.rs`): the H.264
//! passthrough rendition in Annex B and the audio encoded to Opus once per
//! stream, packetized by str0m's writer; a viewer starts at the next
//! keyframe (no PLI can reach such a source).

use super::*;
use table::{SEND_BUFFER_AUDIO, SEND_BUFFER_VIDEO};

/// Why a WHEP request is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhepError {
    /// The body is not `application/sdp`.
    #[error("the offer must be sent as Content-Type: application/sdp")]
    ContentType,
    /// The offer is not SDP, or str0m cannot negotiate it.
    #[error("{0}")]
    MalformedSdp(String),
    /// No video codec in common with the stream's.
    #[error("{0}")]
    Codec(String),
    /// No stream with this id (or not one the caller may see).
    #[error("no stream {0}")]
    UnknownStream(String),
    /// The stream exists and is not live.
    #[error("stream {0} is not live")]
    NotLive(String),
    /// A private stream without a playback token.
    #[error("this stream is private: send its playback token as Authorization: Bearer <token> (from /api/v1/streams/{{id}}/watch)")]
    TokenRequired,
    /// A playback token that is not this stream's, or has expired.
    #[error("{0}")]
    TokenRejected(String),
    /// `--webrtc-max-viewers` viewers are held.
    #[error("the server has {0} WebRTC viewers, its limit: play the stream over LL-HLS")]
    TooManyViewers(usize),
    /// No such WHEP session (`DELETE`).
    #[error("no WHEP session {0} on this stream")]
    UnknownSession(String),
    /// The server cannot take the viewer now (database, socket task).
    #[error("{0}")]
    Internal(String),
    /// Cluster mode: the leases cannot be read now (no owner known).
    #[error("cannot find the node that serves this stream: {0}")]
    OwnerUnknown(String),
    /// Cluster mode: the owner does not answer the relay's offer, or
    /// answers it with nonsense.
    #[error("the node that serves this stream does not answer: {0}")]
    OwnerUnreachable(String),
    /// Cluster mode: the owner refused the relay's offer (its status and
    /// message).
    #[error("the node that serves this stream refused: {message}")]
    OwnerRefused {
        /// The owner's status (4xx, or 503).
        status: u16,
        /// The owner's message.
        message: String,
    },
}

impl WhepError {
    /// The refusal metric's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            WhepError::ContentType | WhepError::MalformedSdp(_) => "protocol",
            WhepError::Codec(_) => "unsupported_codec",
            WhepError::UnknownStream(_) | WhepError::UnknownSession(_) => "not_found",
            WhepError::NotLive(_) => "not_live",
            WhepError::TokenRequired => "token_required",
            WhepError::TokenRejected(_) => "wrong_token",
            WhepError::TooManyViewers(_) => "too_many_viewers",
            WhepError::Internal(_) => "internal",
            WhepError::OwnerUnknown(_) => "owner_unknown",
            WhepError::OwnerUnreachable(_) => "owner_unreachable",
            WhepError::OwnerRefused { .. } => "owner_refused",
        }
    }

    /// Counts this refusal in `onair_playback_refusals_total`.
    pub fn count(&self) {
        viewer_refused(self.reason());
    }
}

/// Counts a WHEP refusal (or a viewer freed for not connecting: `timeout`).
pub fn viewer_refused(reason: &'static str) {
    metrics::counter!("onair_playback_refusals_total", "transport" => "whep", "reason" => reason)
        .increment(1);
}

impl Endpoint {
    /// WHEP viewers held (connecting or playing).
    pub fn viewer_count(&self) -> usize {
        self.lock_viewers().len()
    }

    pub(super) fn lock_viewers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Info>> {
        self.viewers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `POST /api/v1/streams/{stream}/whep`, the caller's access already
    /// checked: answers `offer` for a viewer of the stream's publisher.
    /// Every refusal is counted.
    pub fn play(
        self: &Arc<Self>,
        stream: &str,
        content_type: Option<&str>,
        offer: &[u8],
    ) -> Result<Accepted, WhepError> {
        let result = self.try_play(stream, content_type, offer);
        if let Err(e) = &result {
            e.count();
            tracing::info!(stream, error = %e, "WHEP play refused");
        }
        result
    }

    fn try_play(
        self: &Arc<Self>,
        stream: &str,
        content_type: Option<&str>,
        offer: &[u8],
    ) -> Result<Accepted, WhepError> {
        let parsed = relay::check_viewer_offer(content_type, offer)?;
        let source = self
            .lock()
            .values()
            .find(|i| i.stream == stream)
            .map(|i| (i.id, i.video.clone()));
        // A WHIP publisher is forwarded as received; any other live source
        // is fed from its pipeline (`fed.rs`), H.264 only.
        let source = match source {
            Some(s) if self.hub.is_publishing(stream) => Some(s),
            _ if self.hub.is_publishing(stream) => None,
            _ => return Err(WhepError::NotLive(stream.to_string())),
        };
        let (id, resource) = self.reserve_viewer(stream)?;
        let (source, codecs) = match source {
            Some(s) => s,
            None => match self.fed_source(stream) {
                Ok(fed) => (fed, vec!["h264"]),
                Err(e) => {
                    self.forget(id);
                    return Err(e);
                }
            },
        };
        match self.negotiate_viewer(id, source, parsed, &codecs) {
            Ok(answer) => Ok(Accepted { answer, resource }),
            Err(e) => {
                self.forget(id);
                Err(e)
            }
        }
    }

    /// A viewer's id and resource, its slot held (so that a burst of
    /// offers cannot pass `--webrtc-max-viewers` together).
    pub(super) fn reserve_viewer(&self, stream: &str) -> Result<(SessionId, String), WhepError> {
        let max = self.cfg.max_viewers;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let resource = random_resource().map_err(WhepError::Internal)?;
        let mut v = self.lock_viewers();
        if v.len() >= max {
            return Err(WhepError::TooManyViewers(max));
        }
        v.insert(
            resource.clone(),
            Info {
                id,
                stream: stream.to_string(),
                video: Vec::new(),
            },
        );
        metrics::gauge!("onair_webrtc_viewers").set(v.len() as f64);
        Ok((id, resource))
    }

    pub(super) fn negotiate_viewer(
        &self,
        id: SessionId,
        source: SessionId,
        offer: SdpOffer,
        codecs: &[&'static str],
    ) -> Result<String, WhepError> {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_vp8(true)
            .enable_opus(true, false)
            .set_send_buffer_video(SEND_BUFFER_VIDEO)
            .set_send_buffer_audio(SEND_BUFFER_AUDIO)
            .set_stats_interval(None)
            .build(Instant::now());
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| WhepError::Internal(format!("no host candidate: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WhepError::MalformedSdp(format!("the offer cannot be negotiated: {e}")))?
            .to_sdp_string();
        let takes = sdp::video_codecs(&answer);
        if !codecs.iter().any(|c| takes.contains(c)) {
            return Err(WhepError::Codec(format!(
                "the stream's video is {}; the offer takes {}",
                codecs.join(" or "),
                if takes.is_empty() {
                    "no H.264 or VP8".to_string()
                } else {
                    takes.join(", ")
                }
            )));
        }
        self.commands
            .send(Command::AddViewer {
                id,
                source,
                rtc: Box::new(rtc),
            })
            .map_err(|_| WhepError::Internal("the WebRTC socket task stopped".into()))?;
        Ok(answer)
    }

    /// `DELETE` on a viewer's resource: the viewer leaves.
    pub fn stop(&self, stream: &str, resource: &str) -> Result<(), WhepError> {
        let id = match self.lock_viewers().get(resource) {
            Some(i) if i.stream == stream => i.id,
            _ => return Err(WhepError::UnknownSession(resource.to_string())),
        };
        self.forget(id);
        let _ = self.commands.send(Command::Remove { id, ended: false });
        Ok(())
    }
}
