//! Forwarding, the SFU part: a publisher's media data (depacketized by
//! str0m, not decoded) written to each of its connected viewers.

use super::*;

/// A publisher's media data, as its viewers are given it.
#[derive(Debug, Clone)]
pub struct Forward {
    pub(super) kind: MediaKind,
    pub(super) codec: Codec,
    /// The publisher's payload parameters (none for a fed source).
    pub(super) params: Option<PayloadParams>,
    pub(super) time: MediaTime,
    pub(super) wallclock: Instant,
    pub(super) keyframe: bool,
    pub(super) data: Arc<[u8]>,
}

impl Forward {
    /// Media data of `kind` as str0m depacketized it (a WHIP publisher's,
    /// or a relay's upstream).
    pub fn of(kind: MediaKind, d: &MediaData) -> Self {
        Forward {
            kind,
            codec: d.params.spec().codec,
            params: Some(d.params),
            time: d.time,
            wallclock: d.network_time,
            keyframe: kind == MediaKind::Video && d.is_keyframe(),
            data: d.data.clone(),
        }
    }

    /// Video or audio.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// A video keyframe.
    pub fn is_keyframe(&self) -> bool {
        self.keyframe
    }

    /// The payload (H.264 in Annex B, VP8, or Opus).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

impl Table {
    pub(super) fn want_keyframe(&mut self, source: SessionId) {
        if self.is_fed(source) {
            if !self.keyframe_wants.contains(&source) {
                self.keyframe_wants.push(source);
            }
            return;
        }
        if let Some(p) = self
            .entries
            .iter_mut()
            .find(|e| e.id == source && e.role == Role::Publisher)
        {
            p.want_keyframe = true;
        }
    }

    /// Writes a publisher's media data to each of its connected viewers.
    pub(super) fn forward(
        &mut self,
        source: SessionId,
        frames: &[Forward],
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let mut dropped = 0u64;
        let mut wants_keyframe = false;
        for v in self.entries.iter_mut() {
            if v.role != Role::Viewer(source) || v.connect_by.is_some() || v.doomed.is_some() {
                continue;
            }
            for f in frames {
                let mid = match f.kind {
                    MediaKind::Video => v.video,
                    MediaKind::Audio => v.audio,
                };
                let Some(mid) = mid else {
                    continue;
                };
                if f.kind == MediaKind::Video && !v.keyframe_seen {
                    if !f.keyframe {
                        continue;
                    }
                    v.keyframe_seen = true;
                }
                if !write(&mut v.rtc, mid, f) {
                    dropped += 1;
                }
            }
            let mut got = Drained::default();
            if let Err(why) = poll(v, now, out, &mut got) {
                v.doomed = Some(why);
            }
            wants_keyframe |= got.wants_keyframe;
        }
        if wants_keyframe {
            self.want_keyframe(source);
        }
        if dropped > 0 {
            self.dropped = self.dropped.saturating_add(dropped);
            metrics::counter!("onair_webrtc_viewer_drops_total").increment(dropped);
        }
    }
}

/// Writes one frame to a viewer's media `mid`, on its payload type for the
/// publisher's codec parameters or, failing an exact match (or for a fed
/// source), the first of the same codec (H.264: packetization mode 1
/// preferred). False if it could not be written.
fn write(rtc: &mut Rtc, mid: Mid, f: &Forward) -> bool {
    let Some(w) = rtc.writer(mid) else {
        return false;
    };
    let pt = f.params.and_then(|p| w.match_params(p)).or_else(|| {
        let same = || w.payload_params().filter(|p| p.spec().codec == f.codec);
        same()
            .find(|p| p.spec().format.packetization_mode == Some(1))
            .or_else(|| same().next())
            .map(|p| p.pt())
    });
    let Some(pt) = pt else {
        return false;
    };
    w.write(pt, f.wallclock, f.time, f.data.clone()).is_ok()
}

#[cfg(test)]
mod tests;
