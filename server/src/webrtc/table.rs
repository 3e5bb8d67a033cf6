//! The sans-IO core: every WHIP session's `Rtc` on the one UDP socket, with
//! its bookkeeping. Datagrams go to the session whose `Rtc` accepts them
//! (STUN by its ICE credentials, the rest by the peer's address); each
//! mutation is followed by a full drain of the `Rtc`'s output, which comes
//! back as [`Out`] for the caller to carry out (send, hand frames over).
//! Time is passed in: nothing here reads a clock or touches a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

/// A WHIP session's id (the resource URL's last part).
pub type SessionId = u64;

/// How often a keyframe is asked for while none has come.
pub const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// Why a session was freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// ICE and DTLS did not connect within the connect time-out.
    ConnectTimeout,
    /// Connected, then nothing arrived for the connect time-out, or ICE
    /// reported the peer gone.
    Gone,
    /// str0m failed on the peer's data.
    Protocol,
}

/// One depacketized frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Video (H.264 in Annex B, or VP8) or audio (Opus).
    pub kind: MediaKind,
    /// The negotiated codec of its payload type.
    pub codec: Codec,
    /// RTP time, extended to 64 bits, in the track's clock (90 kHz, 48 kHz).
    pub rtp_time: u64,
    /// When its last packet arrived.
    pub arrived: Instant,
    /// An H.264 IDR access unit.
    pub keyframe: bool,
    /// The payload.
    pub data: Arc<[u8]>,
}

/// What the caller must do.
#[derive(Debug)]
pub enum Out {
    /// Send `contents` to `destination` from the socket.
    Transmit {
        /// Where to.
        destination: SocketAddr,
        /// The datagram.
        contents: Vec<u8>,
    },
    /// ICE and DTLS are up: media follows. The peer's address.
    Connected(SessionId, SocketAddr),
    /// A frame of a session.
    Frame(SessionId, Frame),
    /// The session is freed (no longer in the table).
    Closed(SessionId, Closed),
}

struct Entry {
    id: SessionId,
    rtc: Rtc,
    /// Until connected: when the session is given up.
    connect_by: Option<Instant>,
    /// The last datagram from the peer, and where it came from.
    last_heard: Instant,
    peer: Option<SocketAddr>,
    /// The `Rtc`'s next timeout.
    wake: Instant,
    video: Option<Mid>,
    audio: Option<Mid>,
    keyframe_seen: bool,
    last_pli: Option<Instant>,
}

/// Every session on one socket.
pub struct Table {
    entries: Vec<Entry>,
    /// How long connecting may take, and how long a connected peer may be silent.
    timeout: Duration,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("sessions", &self.entries.len())
            .finish()
    }
}

impl Table {
    /// An empty table; `timeout` bounds connecting and silence.
    pub fn new(timeout: Duration) -> Self {
        Table {
            entries: Vec::new(),
            timeout,
        }
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether session `id` is held.
    pub fn contains(&self, id: SessionId) -> bool {
        self.entries.iter().any(|e| e.id == id)
    }

    /// Adds a session whose offer was accepted, at `now`.
    pub fn insert(&mut self, id: SessionId, rtc: Rtc, now: Instant, out: &mut Vec<Out>) {
        self.entries.push(Entry {
            id,
            rtc,
            connect_by: Some(now + self.timeout),
            last_heard: now,
            peer: None,
            wake: now,
            video: None,
            audio: None,
            keyframe_seen: false,
            last_pli: None,
        });
        let last = self.entries.len() - 1;
        self.drain(last, now, out);
    }

    /// Frees session `id` (the publisher's `DELETE`); false if unknown.
    pub fn remove(&mut self, id: SessionId, out: &mut Vec<Out>) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.id == id) else {
            return false;
        };
        let mut e = self.entries.swap_remove(i);
        // Tell the peer (DTLS close_notify, RTCP BYE) as far as it goes.
        if e.rtc.close().is_ok() {
            while let Ok(o) = e.rtc.poll_output() {
                match o {
                    Output::Transmit(t) => out.push(Out::Transmit {
                        destination: t.destination,
                        contents: t.contents.into(),
                    }),
                    Output::Timeout(_) => break,
                    Output::Event(_) => {}
                }
            }
        }
        true
    }

    /// One datagram from `source` to the socket at `destination`, received
    /// at `now`. Returns false when no session takes it (it is dropped).
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<Out>,
    ) -> bool {
        let Ok(contents) = bytes.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let Some(i) = self.entries.iter().position(|e| e.rtc.accepts(&input)) else {
            return false;
        };
        let entry = &mut self.entries[i];
        entry.last_heard = now;
        entry.peer = Some(source);
        if entry.rtc.handle_input(input).is_err() {
            self.close(i, Closed::Protocol, out);
            return true;
        }
        self.drain(i, now, out);
        true
    }

    /// Drives every session whose timeout is due at `now`, and frees those
    /// that did not connect, or fell silent, within the time-out.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Out>) {
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            let expired = match e.connect_by {
                Some(by) => (now >= by).then_some(Closed::ConnectTimeout),
                None => (now.saturating_duration_since(e.last_heard) >= self.timeout)
                    .then_some(Closed::Gone),
            };
            if let Some(why) = expired {
                self.close(i, why, out);
                continue;
            }
            if e.wake <= now {
                if self.entries[i]
                    .rtc
                    .handle_input(Input::Timeout(now))
                    .is_err()
                {
                    self.close(i, Closed::Protocol, out);
                    continue;
                }
                if !self.drain(i, now, out) {
                    continue;
                }
            }
            // Still no keyframe: ask again (each mutation drained).
            if let Some(at) = keyframe_due(&self.entries[i]) {
                if at <= now {
                    ask_keyframe(&mut self.entries[i], now);
                    if !self.drain(i, now, out) {
                        continue;
                    }
                }
            }
            i += 1;
        }
    }

    /// The earliest moment [`Table::tick`] has work.
    pub fn next_wake(&self) -> Option<Instant> {
        self.entries
            .iter()
            .map(|e| {
                let limit = e.connect_by.unwrap_or(e.last_heard + self.timeout);
                let wake = e.wake.min(limit);
                keyframe_due(e).map_or(wake, |at| wake.min(at))
            })
            .min()
    }

    fn close(&mut self, i: usize, why: Closed, out: &mut Vec<Out>) {
        let e = self.entries.swap_remove(i);
        out.push(Out::Closed(e.id, why));
    }

    /// Polls entry `i` until its next timeout. Returns false if it was closed
    /// (and removed).
    fn drain(&mut self, i: usize, now: Instant, out: &mut Vec<Out>) -> bool {
        let e = &mut self.entries[i];
        let closed = loop {
            let o = match e.rtc.poll_output() {
                Ok(o) => o,
                Err(err) => {
                    tracing::info!(session = e.id, error = %err, "WebRTC session failed");
                    break Closed::Protocol;
                }
            };
            match o {
                Output::Timeout(t) => {
                    e.wake = t;
                    return true;
                }
                Output::Transmit(t) => out.push(Out::Transmit {
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(ev) => match ev {
                    Event::Connected => {
                        e.connect_by = None;
                        let peer = e.peer.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
                        out.push(Out::Connected(e.id, peer));
                        ask_keyframe(e, now);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        break Closed::Gone;
                    }
                    Event::MediaAdded(m) => match m.kind {
                        MediaKind::Video if e.video.is_none() => e.video = Some(m.mid),
                        MediaKind::Audio if e.audio.is_none() => e.audio = Some(m.mid),
                        _ => {}
                    },
                    Event::MediaData(d) => {
                        let kind = if Some(d.mid) == e.video {
                            MediaKind::Video
                        } else if Some(d.mid) == e.audio {
                            MediaKind::Audio
                        } else {
                            continue;
                        };
                        let keyframe = kind == MediaKind::Video && d.is_keyframe();
                        if kind == MediaKind::Video && keyframe {
                            e.keyframe_seen = true;
                        }
                        // Nothing before the first keyframe: the stream starts
                        // with a picture that decodes, the audio with it.
                        if !e.keyframe_seen {
                            ask_keyframe(e, now);
                            continue;
                        }
                        out.push(Out::Frame(
                            e.id,
                            Frame {
                                kind,
                                codec: d.params.spec().codec,
                                rtp_time: d.time.numer(),
                                arrived: d.network_time,
                                keyframe,
                                data: d.data,
                            },
                        ));
                    }
                    _ => {}
                },
            }
        };
        self.close(i, closed, out);
        false
    }
}

/// Asks the publisher for a keyframe (PLI), at most every [`PLI_INTERVAL`].
fn ask_keyframe(e: &mut Entry, now: Instant) {
    let Some(mid) = e.video else {
        return;
    };
    if e.last_pli
        .is_some_and(|t| now.saturating_duration_since(t) < PLI_INTERVAL)
    {
        return;
    }
    // Tried or not (no packet of the stream yet), the next try is one
    // interval later.
    e.last_pli = Some(now);
    if let Some(mut w) = e.rtc.writer(mid) {
        if w.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
        }
    }
}

/// When a connected session that has had no keyframe asks for one next.
fn keyframe_due(e: &Entry) -> Option<Instant> {
    if e.connect_by.is_some() || e.keyframe_seen || e.video.is_none() {
        return None;
    }
    Some(e.last_pli.map_or(e.last_heard, |t| t + PLI_INTERVAL))
}

#[cfg(test)]
mod tests;
