//! The sans-IO core: every WebRTC session's `Rtc` on the one UDP socket,
//! with its bookkeeping: WHIP publishers, and WHEP viewers of a publisher.
//! Datagrams go to the session whose `Rtc` accepts them (STUN by its ICE
//! credentials, the rest by the peer's address); each mutation is followed
//! by a full drain of the `Rtc`'s output, which comes back as [`Out`] for the
//! caller to carry out (send, hand frames over).
//!
//! Forwarding (the SFU part, no decoding): a publisher's media data, as
//! str0m depacketized it, is written to each of its connected viewers'
//! matching media (payload type matched on the codec's parameters), each
//! viewer starting at a keyframe; str0m packetizes it again and keeps it
//! for NACKs ([`SEND_BUFFER_VIDEO`]). A viewer joining, or asking for a
//! keyframe, makes the publisher be asked (PLI). Each viewer costs one
//! write per frame and its own bounded buffers: a viewer that stops reading
//! only loses its own packets ([`Table::dropped`]), and is freed when it
//! falls silent. A publisher that goes ends its viewers
//! ([`Closed::SourceEnded`]).
//!
//! Time is passed in: nothing here reads a clock or touches a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::{Codec, PayloadParams};
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};

/// A WebRTC session's id (WHIP or WHEP).
pub type SessionId = u64;

/// How often a keyframe is asked for while none has come.
pub const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// A viewer's outgoing video packets kept by str0m, for pacing and to answer
/// NACKs (with RTX, when the viewer negotiated it): 1000 packets, about 8 s
/// of a 1.2 Mbps stream. str0m answers NACKs for packets up to 3 s old.
pub const SEND_BUFFER_VIDEO: usize = 1000;
/// A viewer's outgoing audio packets kept by str0m (one per Opus frame of
/// 20 ms: one second).
pub const SEND_BUFFER_AUDIO: usize = 50;

/// What a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A WHIP publisher: its frames come out as [`Out::Frame`] and are
    /// forwarded to its viewers.
    Publisher,
    /// A WHEP viewer of the publisher with this id.
    Viewer(SessionId),
}

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
    /// A viewer whose publisher is gone.
    SourceEnded,
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
    /// A frame of a publisher.
    Frame(SessionId, Frame),
    /// The session is freed (no longer in the table).
    Closed(SessionId, Closed),
}

struct Entry {
    id: SessionId,
    role: Role,
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
    /// Publisher: a keyframe came. Viewer: its video has started (at a keyframe).
    keyframe_seen: bool,
    /// Publisher: a viewer wants a keyframe (joined, or asked).
    want_keyframe: bool,
    last_pli: Option<Instant>,
    /// To be freed at the next tick (set where indices must not move).
    doomed: Option<Closed>,
}

/// What one drain of an `Rtc` asks of the table.
#[derive(Default)]
struct Drained {
    forward: Vec<Forward>,
    /// A viewer connected, or asked for a keyframe.
    wants_keyframe: bool,
}

/// Every session on one socket.
pub struct Table {
    entries: Vec<Entry>,
    /// How long connecting may take, and how long a connected peer may be silent.
    timeout: Duration,
    /// Frames not given to a viewer (no matching codec, or str0m refused them).
    dropped: u64,
    /// Fed sources (`fed.rs`) and relayed ones.
    fed: Vec<SessionId>,
    /// Fed sources a viewer wants a keyframe of (joined, or asked), until
    /// taken ([`Table::take_keyframe_wants`]): a relay asks its upstream.
    keyframe_wants: Vec<SessionId>,
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
            dropped: 0,
            fed: Vec::new(),
            keyframe_wants: Vec::new(),
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

    /// Viewers held of publisher `source`.
    pub fn viewers_of(&self, source: SessionId) -> usize {
        self.entries
            .iter()
            .filter(|e| e.role == Role::Viewer(source) && e.doomed.is_none())
            .count()
    }

    /// Frames not given to a viewer so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds a publisher whose offer was accepted, at `now`.
    pub fn insert(&mut self, id: SessionId, rtc: Rtc, now: Instant, out: &mut Vec<Out>) {
        self.insert_as(id, Role::Publisher, rtc, now, out);
    }

    /// Adds a session with its role; a viewer whose publisher is not held is
    /// freed at the next tick ([`Closed::SourceEnded`]).
    pub fn insert_as(
        &mut self,
        id: SessionId,
        role: Role,
        rtc: Rtc,
        now: Instant,
        out: &mut Vec<Out>,
    ) {
        let orphan = match role {
            Role::Viewer(source) => {
                !self.is_fed(source)
                    && !self
                        .entries
                        .iter()
                        .any(|e| e.id == source && e.role == Role::Publisher && e.doomed.is_none())
            }
            Role::Publisher => false,
        };
        self.entries.push(Entry {
            id,
            role,
            rtc,
            connect_by: Some(now + self.timeout),
            last_heard: now,
            peer: None,
            wake: now,
            video: None,
            audio: None,
            keyframe_seen: false,
            want_keyframe: false,
            last_pli: None,
            doomed: orphan.then_some(Closed::SourceEnded),
        });
        let last = self.entries.len() - 1;
        self.drain(last, now, out);
    }

    /// Frees session `id` (a `DELETE`), telling its peer; a publisher's
    /// viewers are freed at the next tick. False if unknown.
    pub fn remove(&mut self, id: SessionId, out: &mut Vec<Out>) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.id == id) else {
            return self.remove_fed(id);
        };
        let mut e = self.entries.swap_remove(i);
        shut(&mut e, out);
        self.orphan_viewers_of(&e);
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
    /// that did not connect, or fell silent, within the time-out, and
    /// viewers whose publisher went.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Out>) {
        let mut i = 0;
        while i < self.entries.len() {
            let e = &mut self.entries[i];
            if let Some(why) = e.doomed {
                if why == Closed::SourceEnded {
                    shut(e, out);
                }
                self.close(i, why, out);
                continue;
            }
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
            // No keyframe yet, or a viewer wants one: ask (each mutation drained).
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
                if e.doomed.is_some() {
                    return e.last_heard.min(e.wake);
                }
                let limit = e.connect_by.unwrap_or(e.last_heard + self.timeout);
                let wake = e.wake.min(limit);
                keyframe_due(e).map_or(wake, |at| wake.min(at))
            })
            .min()
    }

    fn close(&mut self, i: usize, why: Closed, out: &mut Vec<Out>) {
        let e = self.entries.swap_remove(i);
        self.orphan_viewers_of(&e);
        out.push(Out::Closed(e.id, why));
    }

    /// A publisher is gone: its viewers are freed at the next tick.
    fn orphan_viewers_of(&mut self, gone: &Entry) {
        if gone.role == Role::Publisher {
            self.orphan_viewers(gone.id);
        }
    }

    fn orphan_viewers(&mut self, source: SessionId) {
        for v in self.entries.iter_mut() {
            if v.role == Role::Viewer(source) && v.doomed.is_none() {
                v.doomed = Some(Closed::SourceEnded);
            }
        }
    }

    /// Polls entry `i` until its next timeout, then forwards what a
    /// publisher gave. Returns false if it was closed (and removed). Other
    /// entries' indices do not move.
    fn drain(&mut self, i: usize, now: Instant, out: &mut Vec<Out>) -> bool {
        let mut got = Drained::default();
        let polled = poll(&mut self.entries[i], now, out, &mut got);
        let (id, role) = (self.entries[i].id, self.entries[i].role);
        if got.wants_keyframe {
            if let Role::Viewer(source) = role {
                self.want_keyframe(source);
            }
        }
        if !got.forward.is_empty() {
            self.forward(id, &got.forward, now, out);
        }
        match polled {
            Ok(()) => true,
            Err(why) => {
                self.close(i, why, out);
                false
            }
        }
    }
}

/// Tells the peer the session ends (DTLS close_notify, RTCP BYE), as far
/// as it goes.
fn shut(e: &mut Entry, out: &mut Vec<Out>) {
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
}

/// Polls one entry until its next timeout.
fn poll(e: &mut Entry, now: Instant, out: &mut Vec<Out>, got: &mut Drained) -> Result<(), Closed> {
    loop {
        let o = match e.rtc.poll_output() {
            Ok(o) => o,
            Err(err) => {
                tracing::info!(session = e.id, error = %err, "WebRTC session failed");
                return Err(Closed::Protocol);
            }
        };
        match o {
            Output::Timeout(t) => {
                e.wake = t;
                return Ok(());
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
                    match e.role {
                        Role::Publisher => ask_keyframe(e, now),
                        // A viewer starts at a keyframe: ask its publisher.
                        Role::Viewer(_) => got.wants_keyframe = true,
                    }
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    return Err(Closed::Gone);
                }
                Event::MediaAdded(m) => match m.kind {
                    MediaKind::Video if e.video.is_none() => e.video = Some(m.mid),
                    MediaKind::Audio if e.audio.is_none() => e.audio = Some(m.mid),
                    _ => {}
                },
                Event::KeyframeRequest(_) if matches!(e.role, Role::Viewer(_)) => {
                    got.wants_keyframe = true;
                }
                Event::MediaData(d) if e.role == Role::Publisher => {
                    let kind = if Some(d.mid) == e.video {
                        MediaKind::Video
                    } else if Some(d.mid) == e.audio {
                        MediaKind::Audio
                    } else {
                        continue;
                    };
                    let keyframe = kind == MediaKind::Video && d.is_keyframe();
                    if keyframe {
                        e.keyframe_seen = true;
                        e.want_keyframe = false;
                    }
                    // Nothing before the first keyframe: the stream starts
                    // with a picture that decodes, the audio with it.
                    if !e.keyframe_seen {
                        ask_keyframe(e, now);
                        continue;
                    }
                    got.forward.push(Forward::of(kind, &d));
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
    }
}

/// Asks the publisher for a keyframe (PLI), at most every [`PLI_INTERVAL`].
fn ask_keyframe(e: &mut Entry, now: Instant) {
    let Some(mid) = e.video else {
        return;
    };
    if e.role != Role::Publisher
        || e.last_pli
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

/// When a connected publisher that has had no keyframe, or whose viewer
/// wants one, asks for one next.
fn keyframe_due(e: &Entry) -> Option<Instant> {
    if e.role != Role::Publisher
        || e.connect_by.is_some()
        || (e.keyframe_seen && !e.want_keyframe)
        || e.video.is_none()
    {
        return None;
    }
    Some(e.last_pli.map_or(e.last_heard, |t| t + PLI_INTERVAL))
}

mod fed;
mod forward;
pub use forward::Forward;

#[cfg(test)]
mod tests;
