//! Fed sources: WHEP viewers of a stream live from RTMP, SRT or WebSocket.
//! The stream's pipeline hands its WebRTC output (the H.264 passthrough
//! rendition in Annex B, the audio encoded to Opus: [`RtcFrame`]) to a
//! bounded queue ([`RtcFeed`](crate::ingest::rtc::RtcFeed)) attached while
//! the stream has viewers; a task moves each frame to the socket task, where
//! a publisher-like table entry writes it to the viewers
//! ([`Table::feed`](table::Table::feed)). The last viewer leaving detaches
//! the queue, and the pipeline stops converting; the pipeline stopping ends
//! the queue, the source and its viewers.

use super::*;
use crate::ingest::rtc::KeyframeGate;
use crate::media::live::RtcFrame;
use std::sync::atomic::AtomicUsize;

/// A fed source's frames handed to the socket task and not yet written:
/// beyond this many (the socket task is behind) the pump drops frames,
/// counted in `onair_webrtc_feed_drops_total`, video then resuming at a
/// keyframe.
pub(super) const FED_BACKLOG: usize = 256;

impl Endpoint {
    fn lock_fed(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionId>> {
        self.fed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fed source of live stream `stream`, started if it is not.
    pub(super) fn fed_source(self: &Arc<Self>, stream: &str) -> Result<SessionId, WhepError> {
        let feed = self.hub.rtc_feed(stream);
        let mut fed = self.lock_fed();
        if let Some(&id) = fed.get(stream) {
            if feed.attached() {
                return Ok(id);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.commands
            .send(Command::AddFed { id })
            .map_err(|_| WhepError::Internal("the WebRTC socket task stopped".into()))?;
        let frames = feed.attach();
        fed.insert(stream.to_string(), id);
        tokio::spawn(pump(
            Arc::downgrade(self),
            self.commands.clone(),
            id,
            stream.to_string(),
            frames,
        ));
        Ok(id)
    }

    /// Stream `stream` has no viewer left: its pipeline stops feeding.
    pub(super) fn end_fed(&self, stream: &str) {
        if self.lock_fed().remove(stream).is_some() {
            self.hub.rtc_feed(stream).detach();
        }
    }
}

/// Moves a stream's frames to the socket task until its queue ends
/// (detached, or the pipeline stopped), then removes the source.
async fn pump(
    endpoint: std::sync::Weak<Endpoint>,
    commands: mpsc::UnboundedSender<Command>,
    id: SessionId,
    stream: String,
    mut frames: mpsc::Receiver<RtcFrame>,
) {
    let backlog = Arc::new(AtomicUsize::new(0));
    // The feed already starts video at a keyframe.
    let mut gate = KeyframeGate::open();
    while let Some(frame) = frames.recv().await {
        if !gate.pass(&frame) {
            continue;
        }
        if backlog.load(Ordering::Relaxed) >= FED_BACKLOG {
            metrics::counter!("onair_webrtc_feed_drops_total").increment(1);
            gate.dropped(frame.kind);
            continue;
        }
        backlog.fetch_add(1, Ordering::Relaxed);
        let backlog = backlog.clone();
        if commands.send(Command::Feed { id, frame, backlog }).is_err() {
            break;
        }
    }
    let _ = commands.send(Command::Remove { id, ended: false });
    if let Some(e) = endpoint.upgrade() {
        let mut fed = e.lock_fed();
        if fed.get(&stream) == Some(&id) {
            fed.remove(&stream);
        }
    }
}
