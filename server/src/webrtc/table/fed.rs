//! Fed sources: publisher-like entries without a peer, whose frames come
//! from a live pipeline ([`RtcFrame`]: H.264 in Annex B at 90 kHz, Opus at
//! 48 kHz) instead of datagrams. Their viewers are forwarded to as a WHIP
//! publisher's are ([`Table::forward`]), each starting at the next keyframe;
//! no keyframe can be asked for (the ladder's GOP bounds the wait).

use super::*;
use crate::media::live::{RtcFrame, RtcKind};
use str0m::media::Frequency;

impl Table {
    /// Adds a fed source `id` (no `Rtc`: nothing to drive).
    pub fn insert_fed(&mut self, id: SessionId) {
        if !self.fed.contains(&id) {
            self.fed.push(id);
        }
    }

    /// Whether `id` is a fed source.
    pub fn is_fed(&self, id: SessionId) -> bool {
        self.fed.contains(&id)
    }

    /// One frame of fed source `id`, written to its connected viewers at
    /// `now`. False if `id` is not a fed source.
    pub fn feed(
        &mut self,
        id: SessionId,
        frame: &RtcFrame,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> bool {
        if !self.is_fed(id) {
            return false;
        }
        self.forward(id, &[Forward::fed(frame, now)], now, out);
        true
    }

    /// One frame of relayed source `id` (a fed source whose frames are a
    /// relay's upstream media data), written to its connected viewers at
    /// `now`. False if `id` is not a fed source.
    pub fn relay(
        &mut self,
        id: SessionId,
        frame: &Forward,
        now: Instant,
        out: &mut Vec<Out>,
    ) -> bool {
        if !self.is_fed(id) {
            return false;
        }
        self.forward(id, std::slice::from_ref(frame), now, out);
        true
    }

    /// The fed sources a viewer wants a keyframe of since the last call
    /// (a relay asks its upstream with PLI; a pipeline cannot be asked).
    pub fn take_keyframe_wants(&mut self) -> Vec<SessionId> {
        std::mem::take(&mut self.keyframe_wants)
    }

    /// Frees fed source `id`; its viewers are freed at the next tick.
    pub(super) fn remove_fed(&mut self, id: SessionId) -> bool {
        let Some(i) = self.fed.iter().position(|&f| f == id) else {
            return false;
        };
        self.fed.swap_remove(i);
        self.keyframe_wants.retain(|&w| w != id);
        self.orphan_viewers(id);
        true
    }
}

impl Forward {
    /// A pipeline's frame, as its viewers are given it.
    pub(super) fn fed(f: &RtcFrame, now: Instant) -> Self {
        let (kind, codec, rate) = match f.kind {
            RtcKind::Video => (MediaKind::Video, Codec::H264, Frequency::NINETY_KHZ),
            RtcKind::Audio => (MediaKind::Audio, Codec::Opus, Frequency::FORTY_EIGHT_KHZ),
        };
        Forward {
            kind,
            codec,
            params: None,
            time: MediaTime::new(f.time, rate),
            wallclock: now,
            keyframe: f.keyframe,
            data: Arc::from(&f.data[..]),
        }
    }
}
