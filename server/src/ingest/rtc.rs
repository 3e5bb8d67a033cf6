//! The WebRTC side's hold on a live stream's pipeline output: a WHEP viewer
//! of an RTMP, SRT or WebSocket stream attaches a bounded queue here, and
//! the stream's [`LiveOutputs`](super::outputs::LiveOutputs) hands it the
//! pipeline's [`RtcFrame`]s (H.264 in Annex B, Opus) while it is attached;
//! detached, the pipeline converts and encodes nothing for WebRTC.
//!
//! The pipeline never waits: a full queue drops the frame (counted in
//! `onair_webrtc_feed_drops_total`), and after a dropped video frame the
//! video resumes at the next keyframe, so viewers never decode a picture
//! whose reference is missing.

use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::media::live::{RtcFrame, RtcKind};

/// Frames queued between a stream's pipeline and the WebRTC socket task:
/// about four seconds of 30 fps video with its audio.
pub const RTC_QUEUE: usize = 400;

/// Where a queue that drops frames lets video through: after a dropped
/// video frame (or at the start), only from the next keyframe on, so no
/// viewer decodes a picture whose reference is missing. Audio always passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeGate {
    waiting: bool,
}

impl Default for KeyframeGate {
    /// Waiting for a keyframe.
    fn default() -> Self {
        KeyframeGate { waiting: true }
    }
}

impl KeyframeGate {
    /// Letting video through (it starts at a keyframe already).
    pub fn open() -> Self {
        KeyframeGate { waiting: false }
    }

    /// Whether `frame` may be queued.
    pub fn pass(&mut self, frame: &RtcFrame) -> bool {
        if frame.kind != RtcKind::Video || !self.waiting {
            return true;
        }
        if frame.keyframe {
            self.waiting = false;
        }
        !self.waiting
    }

    /// `frame` was dropped after passing: video waits for a keyframe again.
    pub fn dropped(&mut self, frame_kind: RtcKind) {
        self.waiting |= frame_kind == RtcKind::Video;
    }
}

#[derive(Debug, Default)]
struct Attached {
    tx: Option<mpsc::Sender<RtcFrame>>,
    gate: KeyframeGate,
}

/// One stream's WebRTC output queue, attached while it has WHEP viewers.
#[derive(Debug, Default)]
pub struct RtcFeed {
    inner: Mutex<Attached>,
}

impl RtcFeed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Attached> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a new queue (a previous one ends) and returns its receiving
    /// end; video starts at the next keyframe.
    pub fn attach(&self) -> mpsc::Receiver<RtcFrame> {
        let (tx, rx) = mpsc::channel(RTC_QUEUE);
        let mut a = self.lock();
        a.tx = Some(tx);
        a.gate = KeyframeGate::default();
        rx
    }

    /// Detaches the queue: its receiver ends once drained.
    pub fn detach(&self) {
        self.lock().tx = None;
    }

    /// Whether a queue is attached.
    pub fn attached(&self) -> bool {
        self.lock().tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// Queues `frame` if a queue is attached; never waits.
    pub fn send(&self, frame: RtcFrame) {
        let mut a = self.lock();
        if a.tx.is_none() {
            return;
        }
        if !a.gate.pass(&frame) {
            return;
        }
        let kind = frame.kind;
        let Some(tx) = a.tx.as_ref() else {
            return;
        };
        match tx.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("onair_webrtc_feed_drops_total").increment(1);
                a.gate.dropped(kind);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => a.tx = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(kind: RtcKind, time: u64, keyframe: bool) -> RtcFrame {
        RtcFrame {
            kind,
            time,
            keyframe,
            data: Bytes::from_static(&[1]),
        }
    }

    #[test]
    fn nothing_queues_while_detached_and_video_starts_at_a_keyframe() {
        let feed = RtcFeed::default();
        feed.send(frame(RtcKind::Video, 0, true));
        assert!(!feed.attached());
        let mut rx = feed.attach();
        assert!(feed.attached());
        feed.send(frame(RtcKind::Video, 1, false));
        feed.send(frame(RtcKind::Audio, 2, false));
        feed.send(frame(RtcKind::Video, 3, true));
        feed.send(frame(RtcKind::Video, 4, false));
        let got: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| f.time)
            .collect();
        assert_eq!(got, [2, 3, 4]);
        feed.detach();
        assert!(!feed.attached());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn the_gate_holds_video_until_a_keyframe_after_a_drop() {
        let mut gate = KeyframeGate::open();
        assert!(gate.pass(&frame(RtcKind::Video, 0, false)));
        gate.dropped(RtcKind::Audio);
        assert!(gate.pass(&frame(RtcKind::Video, 1, false)));
        gate.dropped(RtcKind::Video);
        assert!(!gate.pass(&frame(RtcKind::Video, 2, false)));
        assert!(gate.pass(&frame(RtcKind::Audio, 3, false)));
        assert!(gate.pass(&frame(RtcKind::Video, 4, true)));
        assert!(gate.pass(&frame(RtcKind::Video, 5, false)));
        assert_eq!(KeyframeGate::default(), {
            let mut g = KeyframeGate::open();
            g.dropped(RtcKind::Video);
            g
        });
    }

    #[test]
    fn a_full_queue_drops_and_video_resumes_at_the_next_keyframe() {
        let feed = RtcFeed::default();
        let mut rx = feed.attach();
        feed.send(frame(RtcKind::Video, 0, true));
        for t in 1..RTC_QUEUE as u64 + 10 {
            feed.send(frame(RtcKind::Video, t, false));
        }
        // Drained: the deltas after the drop wait for a keyframe.
        while rx.try_recv().is_ok() {}
        feed.send(frame(RtcKind::Video, 1000, false));
        feed.send(frame(RtcKind::Audio, 1001, false));
        feed.send(frame(RtcKind::Video, 1002, true));
        let got: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|f| f.time)
            .collect();
        assert_eq!(got, [1001, 1002]);
    }
}
