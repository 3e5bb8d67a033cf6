//! A relay's upstream, sans-IO: this node as a WHEP client of the stream's
//! owner. Its `Rtc` (full ICE, controlling) makes a `recvonly` offer for
//! video and audio; the owner's answer is accepted; then datagrams and time
//! are passed in, and what comes out ([`UpOut`]) is for the caller to carry
//! out: datagrams to send, and the owner's media data as received (not
//! decoded) for the local viewers ([`Forward`]).
//!
//! It ends ([`UpEnd`]) when ICE and DTLS do not connect within the time-out,
//! when nothing arrives for that long once connected, when ICE reports the
//! owner gone, or when the owner closes (its publisher left: the owner
//! frees its viewers, this relay among them).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::table::{Forward, PLI_INTERVAL};

/// What the caller must do.
#[derive(Debug)]
pub enum UpOut {
    /// Send `contents` to `destination` from the relay's socket.
    Transmit {
        /// Where to.
        destination: SocketAddr,
        /// The datagram.
        contents: Vec<u8>,
    },
    /// ICE and DTLS are up with the owner.
    Connected,
    /// The owner's media data, to forward to the local viewers.
    Frame(Forward),
}

/// Why an upstream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpEnd {
    /// ICE and DTLS did not connect within the time-out.
    ConnectTimeout,
    /// Connected, then silent for the time-out, or ICE reported the owner gone.
    Gone,
    /// The owner closed the session (the stream ended there).
    Closed,
    /// str0m failed on the owner's data.
    Protocol,
}

impl UpEnd {
    /// The failure metric's label.
    pub fn label(self) -> &'static str {
        match self {
            UpEnd::ConnectTimeout => "connect_timeout",
            UpEnd::Gone => "owner_gone",
            UpEnd::Closed => "owner_closed",
            UpEnd::Protocol => "protocol",
        }
    }
}

/// One relay's WHEP client session with the owner.
pub struct Upstream {
    rtc: Rtc,
    /// The local candidate (the relay socket's address).
    local: SocketAddr,
    video: Mid,
    audio: Mid,
    timeout: Duration,
    connect_by: Option<Instant>,
    last_heard: Instant,
    wake: Instant,
    last_pli: Option<Instant>,
    /// A keyframe is wanted and was not asked for yet (the owner's video
    /// had not started).
    want_keyframe: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("local", &self.local)
            .field("connected", &self.connect_by.is_none())
            .finish()
    }
}

/// An upstream waiting for the owner's answer, with its SDP offer.
#[derive(Debug)]
pub struct Offered {
    /// The session (not driven until the answer is accepted).
    pub upstream: Upstream,
    /// What the answer is matched with.
    pub pending: SdpPendingOffer,
    /// The offer to POST to the owner.
    pub offer: String,
}

impl Upstream {
    /// A `recvonly` offer (H.264, VP8; Opus) from the local candidate
    /// `local`, at `now`; `timeout` bounds connecting and silence.
    pub fn offer(local: SocketAddr, timeout: Duration, now: Instant) -> Result<Offered, String> {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_vp8(true)
            .enable_opus(true, false)
            .set_stats_interval(None)
            .build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| format!("no host candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().ok_or("no offer to make")?;
        Ok(Offered {
            upstream: Upstream {
                rtc,
                local,
                video,
                audio,
                timeout,
                connect_by: Some(now + timeout),
                last_heard: now,
                wake: now,
                last_pli: None,
                want_keyframe: true,
            },
            pending,
            offer: offer.to_sdp_string(),
        })
    }

    /// Accepts the owner's SDP answer, at `now` (the connect time-out
    /// starts again).
    pub fn accept(
        &mut self,
        pending: SdpPendingOffer,
        answer: &str,
        now: Instant,
    ) -> Result<(), String> {
        let answer = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| format!("the owner's answer is not SDP: {e}"))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("the owner's answer cannot be taken: {e}"))?;
        self.connect_by = Some(now + self.timeout);
        self.last_heard = now;
        self.wake = now;
        Ok(())
    }

    /// One datagram from `source`, received at `now`. Datagrams the session
    /// does not take are dropped.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<UpOut>,
    ) -> Result<(), UpEnd> {
        let Ok(contents) = bytes.try_into() else {
            return Ok(());
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Ok(());
        }
        self.last_heard = now;
        self.rtc.handle_input(input).map_err(|_| UpEnd::Protocol)?;
        self.drain(now, out)
    }

    /// Drives the session at `now`: its timers, the time-outs, and a
    /// keyframe still wanted.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<UpOut>) -> Result<(), UpEnd> {
        match self.connect_by {
            Some(by) if now >= by => return Err(UpEnd::ConnectTimeout),
            None if now.saturating_duration_since(self.last_heard) >= self.timeout => {
                return Err(UpEnd::Gone)
            }
            _ => {}
        }
        if self.wake <= now {
            self.rtc
                .handle_input(Input::Timeout(now))
                .map_err(|_| UpEnd::Protocol)?;
        }
        if self.want_keyframe {
            self.ask_keyframe(now);
        }
        self.drain(now, out)
    }

    /// A local viewer joined or asked for a keyframe: the owner is asked
    /// (PLI), at most every [`PLI_INTERVAL`].
    pub fn request_keyframe(&mut self, now: Instant, out: &mut Vec<UpOut>) -> Result<(), UpEnd> {
        self.want_keyframe = true;
        self.ask_keyframe(now);
        self.drain(now, out)
    }

    /// The earliest moment [`Upstream::tick`] has work.
    pub fn next_wake(&self) -> Instant {
        let limit = self.connect_by.unwrap_or(self.last_heard + self.timeout);
        let mut wake = self.wake.min(limit);
        if self.want_keyframe && self.connect_by.is_none() {
            let at = self.last_pli.map_or(self.last_heard, |t| t + PLI_INTERVAL);
            wake = wake.min(at);
        }
        wake
    }

    /// Tells the owner the session ends (DTLS close_notify, RTCP BYE), as
    /// far as it goes.
    pub fn close(&mut self, out: &mut Vec<UpOut>) {
        if self.rtc.close().is_ok() {
            while let Ok(o) = self.rtc.poll_output() {
                match o {
                    Output::Transmit(t) => out.push(UpOut::Transmit {
                        destination: t.destination,
                        contents: t.contents.into(),
                    }),
                    Output::Timeout(_) => break,
                    Output::Event(_) => {}
                }
            }
        }
    }

    fn ask_keyframe(&mut self, now: Instant) {
        if self.connect_by.is_some()
            || self
                .last_pli
                .is_some_and(|t| now.saturating_duration_since(t) < PLI_INTERVAL)
        {
            return;
        }
        if let Some(mut w) = self.rtc.writer(self.video) {
            if w.is_request_keyframe_possible(KeyframeRequestKind::Pli)
                && w.request_keyframe(None, KeyframeRequestKind::Pli).is_ok()
            {
                self.last_pli = Some(now);
            }
        }
    }

    /// Polls the `Rtc` until its next timeout.
    fn drain(&mut self, now: Instant, out: &mut Vec<UpOut>) -> Result<(), UpEnd> {
        loop {
            let o = self.rtc.poll_output().map_err(|e| {
                tracing::info!(error = %e, "relay upstream failed");
                UpEnd::Protocol
            })?;
            match o {
                Output::Timeout(t) => {
                    self.wake = t;
                    return Ok(());
                }
                Output::Transmit(t) => out.push(UpOut::Transmit {
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Output::Event(ev) => match ev {
                    Event::Connected => {
                        self.connect_by = None;
                        out.push(UpOut::Connected);
                        self.ask_keyframe(now);
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err(UpEnd::Gone);
                    }
                    Event::Closed => return Err(UpEnd::Closed),
                    Event::MediaData(d) => {
                        let kind = if d.mid == self.video {
                            MediaKind::Video
                        } else if d.mid == self.audio {
                            MediaKind::Audio
                        } else {
                            continue;
                        };
                        let f = Forward::of(kind, &d);
                        if f.is_keyframe() {
                            self.want_keyframe = false;
                        }
                        out.push(UpOut::Frame(f));
                    }
                    _ => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
