//! Relays (cluster mode): WHEP viewers on a node that does not own the
//! stream. The HTTP side checks access on this node, finds the owner from
//! the stream's lease and hands over an [`OwnerLink`]; here the viewer is
//! attached to the stream's **relay**: one upstream WebRTC session per
//! stream from this node to the owner ([`Upstream`], this node a WHEP
//! client: it makes the offer, POSTs it to the owner's WHEP endpoint, and
//! connects to the owner's UDP port from a socket of its own). Every local
//! viewer of the stream shares it.
//!
//! The upstream's media data is a source of this node's table like a WHIP
//! publisher's, forwarded as received ([`Table::relay`](table::Table::relay)):
//! each viewer starts at a keyframe, a viewer joining or asking makes the
//! relay ask the owner (PLI), and viewers' NACKs are answered from their own
//! send buffers on this node.
//!
//! The relay is torn down [`RELAY_LINGER`] after its last local viewer
//! leaves (its upstream `DELETE`d at the owner). If the owner goes (ICE or
//! DTLS failure, silence for `--webrtc-connect-timeout-ms`, or the owner
//! closing because the stream ended), the relay ends and its local viewers'
//! sessions are closed as a publisher leaving closes them on the owner.
//!
//! `onair_webrtc_relays` is the number of relays held;
//! `onair_webrtc_relay_failures_total{reason}` counts relays that could not
//! start or ended other than by lingering idle.

use super::*;
use crate::webrtc::upstream::{UpEnd, UpOut, Upstream};
use std::sync::atomic::AtomicUsize;
use table::Forward;

/// How long a relay with no local viewer is kept (a viewer reloading the
/// page, or the next one, reuses it) before its upstream is ended.
pub const RELAY_LINGER: Duration = Duration::from_secs(5);

/// The owner's answer to a relay's offer.
#[derive(Debug, Clone)]
pub struct OwnerAnswer {
    /// The owner's SDP answer.
    pub answer: String,
    /// The owner's resource for the relay (a path, for `DELETE`).
    pub location: String,
}

/// The way to a stream's owner over HTTP (the forwarder's client, with a
/// playback token this node signs).
#[async_trait::async_trait]
pub trait OwnerLink: Send + Sync + std::fmt::Debug {
    /// The owner's base URL (`http://host:port`), from its lease: the
    /// stream not live anywhere is [`WhepError::NotLive`].
    async fn url(&self, stream: &str) -> Result<String, WhepError>;
    /// POSTs a WHEP offer for `stream` to the owner.
    async fn offer(&self, stream: &str, offer: String) -> Result<OwnerAnswer, WhepError>;
    /// `DELETE`s the owner's resource `location`, as far as it goes.
    async fn delete(&self, location: &str);
}

/// What a relay's task is told.
#[derive(Debug)]
pub(super) enum Control {
    /// A local viewer wants a keyframe.
    Keyframe,
    /// The stream has no local viewer left: end after [`RELAY_LINGER`]
    /// unless one came meanwhile.
    Idle,
}

/// A running relay.
#[derive(Debug, Clone)]
pub(super) struct Relay {
    /// Its source id in the table.
    pub(super) id: SessionId,
    control: mpsc::UnboundedSender<Control>,
    /// The video codecs the owner's answer took.
    codecs: Vec<&'static str>,
}

impl Endpoint {
    fn lock_relays(&self) -> std::sync::MutexGuard<'_, HashMap<String, Relay>> {
        self.relays.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Relays held (one per stream played here from another node).
    pub fn relay_count(&self) -> usize {
        self.lock_relays().len()
    }

    /// `POST /api/v1/streams/{stream}/whep` on a node that does not own the
    /// stream, the caller's access already checked: answers `offer` for a
    /// viewer of the stream's relay, started if there is none (the owner
    /// reached through `link`). Every refusal is counted.
    pub async fn play_relayed(
        self: &Arc<Self>,
        stream: &str,
        content_type: Option<&str>,
        offer: &[u8],
        link: Arc<dyn OwnerLink>,
    ) -> Result<Accepted, WhepError> {
        let result = self
            .try_play_relayed(stream, content_type, offer, link)
            .await;
        if let Err(e) = &result {
            e.count();
            tracing::info!(stream, error = %e, "relayed WHEP play refused");
        }
        result
    }

    async fn try_play_relayed(
        self: &Arc<Self>,
        stream: &str,
        content_type: Option<&str>,
        offer: &[u8],
        link: Arc<dyn OwnerLink>,
    ) -> Result<Accepted, WhepError> {
        let parsed = check_viewer_offer(content_type, offer)?;
        let (id, resource) = self.reserve_viewer(stream)?;
        let relay = match self.relay_for(stream, link).await {
            Ok(r) => r,
            Err(e) => {
                self.forget(id);
                return Err(e);
            }
        };
        match self.negotiate_viewer(id, relay.id, parsed, &relay.codecs) {
            Ok(answer) => Ok(Accepted { answer, resource }),
            Err(e) => {
                self.forget(id);
                Err(e)
            }
        }
    }

    /// The stream's relay, started if there is none (one start at a time
    /// per stream: viewers arriving together share it).
    async fn relay_for(
        self: &Arc<Self>,
        stream: &str,
        link: Arc<dyn OwnerLink>,
    ) -> Result<Relay, WhepError> {
        if let Some(r) = self.lock_relays().get(stream) {
            return Ok(r.clone());
        }
        let gate = self
            .relay_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(stream.to_string())
            .or_default()
            .clone();
        let _starting = gate.lock().await;
        if let Some(r) = self.lock_relays().get(stream) {
            return Ok(r.clone());
        }
        let started = self.start_relay(stream, link).await;
        self.relay_starts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
        if let Err(e) = &started {
            let reason = match e {
                WhepError::OwnerUnreachable(_) => Some("owner_unreachable"),
                WhepError::OwnerRefused { .. } => Some("owner_refused"),
                WhepError::Internal(_) => Some("internal"),
                _ => None,
            };
            if let Some(reason) = reason {
                relay_failed(reason);
            }
        }
        started
    }

    async fn start_relay(
        self: &Arc<Self>,
        stream: &str,
        link: Arc<dyn OwnerLink>,
    ) -> Result<Relay, WhepError> {
        let owner = link.url(stream).await?;
        let ip = self.relay_ip(&owner).await;
        let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))
            .and_then(|s| s.set_nonblocking(true).map(|_| s))
            .and_then(UdpSocket::from_std)
            .map_err(|e| WhepError::Internal(format!("no UDP socket for the relay: {e}")))?;
        let local = socket
            .local_addr()
            .map_err(|e| WhepError::Internal(format!("no UDP socket for the relay: {e}")))?;
        let offered = Upstream::offer(local, self.cfg.connect_timeout, Instant::now())
            .map_err(WhepError::Internal)?;
        let mut upstream = offered.upstream;
        let answered = link.offer(stream, offered.offer).await?;
        if let Err(e) = upstream.accept(offered.pending, &answered.answer, Instant::now()) {
            let location = answered.location.clone();
            let link = link.clone();
            tokio::spawn(async move { link.delete(&location).await });
            return Err(WhepError::OwnerUnreachable(e));
        }
        let codecs = sdp::video_codecs(&answered.answer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.commands
            .send(Command::AddFed { id })
            .map_err(|_| WhepError::Internal("the WebRTC socket task stopped".into()))?;
        let (control, rx) = mpsc::unbounded_channel();
        let relay = Relay {
            id,
            control,
            codecs,
        };
        {
            let mut relays = self.lock_relays();
            relays.insert(stream.to_string(), relay.clone());
            metrics::gauge!("onair_webrtc_relays").set(relays.len() as f64);
        }
        tracing::info!(stream, relay = id, owner, "relay started");
        tokio::spawn(relay_task(
            Arc::downgrade(self),
            self.commands.clone(),
            RelayTask {
                id,
                stream: stream.to_string(),
                socket,
                upstream,
                control: rx,
                link,
                location: answered.location,
            },
        ));
        Ok(relay)
    }

    /// The relay socket's address: the endpoint's bound IP, else the one
    /// this host reaches the owner from (no packet is sent to learn it).
    async fn relay_ip(&self, owner_url: &str) -> IpAddr {
        if !self.local.ip().is_unspecified() {
            return self.local.ip();
        }
        let owner = url::Url::parse(owner_url).ok().and_then(|u| {
            let host = u.host_str()?.trim_matches(['[', ']']).to_string();
            Some((host, u.port_or_known_default()?))
        });
        if let Some((host, port)) = owner {
            if let Ok(mut addrs) = tokio::net::lookup_host((host.as_str(), port)).await {
                if let Some(addr) = addrs.next() {
                    let any = SocketAddr::new(
                        if addr.is_ipv4() {
                            IpAddr::from([0u8; 4])
                        } else {
                            IpAddr::from([0u16; 8])
                        },
                        0,
                    );
                    let probe = std::net::UdpSocket::bind(any)
                        .and_then(|s| s.connect(addr).map(|_| s))
                        .and_then(|s| s.local_addr());
                    if let Ok(a) = probe {
                        return a.ip();
                    }
                }
            }
        }
        self.candidate.ip()
    }

    /// Local viewers of the relay `relay` want a keyframe.
    pub(super) fn relay_keyframe(&self, relay: SessionId) {
        if let Some(r) = self.lock_relays().values().find(|r| r.id == relay) {
            let _ = r.control.send(Control::Keyframe);
        }
    }

    /// Stream `stream` has no local viewer left: its relay, if any, lingers.
    pub(super) fn relay_idle(&self, stream: &str) {
        if let Some(r) = self.lock_relays().get(stream) {
            let _ = r.control.send(Control::Idle);
        }
    }

    /// Whether relay `id` of `stream` may end (no local viewer): if so it is
    /// forgotten at once (a viewer coming next starts a new one).
    fn relay_release(&self, stream: &str, id: SessionId) -> bool {
        let mut relays = self.lock_relays();
        if relays.get(stream).is_some_and(|r| r.id == id) {
            let viewed = self.lock_viewers().values().any(|i| i.stream == stream);
            if viewed {
                return false;
            }
            relays.remove(stream);
            metrics::gauge!("onair_webrtc_relays").set(relays.len() as f64);
        }
        true
    }

    /// Relay `id` of `stream` ended.
    fn relay_ended(&self, stream: &str, id: SessionId) {
        let mut relays = self.lock_relays();
        if relays.get(stream).is_some_and(|r| r.id == id) {
            relays.remove(stream);
        }
        metrics::gauge!("onair_webrtc_relays").set(relays.len() as f64);
    }
}

/// Counts a relay that could not start, or ended other than idle.
fn relay_failed(reason: &'static str) {
    metrics::counter!("onair_webrtc_relay_failures_total", "reason" => reason).increment(1);
}

/// The content type and SDP of a viewer's offer, parsed.
pub(super) fn check_viewer_offer(
    content_type: Option<&str>,
    offer: &[u8],
) -> Result<SdpOffer, WhepError> {
    let sdp_type = content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/sdp"));
    if !sdp_type {
        return Err(WhepError::ContentType);
    }
    let text = std::str::from_utf8(offer)
        .map_err(|_| WhepError::MalformedSdp("the offer is not UTF-8 text".into()))?;
    sdp::check_offer(text).map_err(|e| match e {
        OfferError::Malformed(_) => WhepError::MalformedSdp(e.to_string()),
        other => WhepError::Codec(other.to_string()),
    })?;
    SdpOffer::from_sdp_string(text)
        .map_err(|e| WhepError::MalformedSdp(format!("the body is not an SDP offer: {e}")))
}

/// What a relay's task owns.
struct RelayTask {
    id: SessionId,
    stream: String,
    socket: UdpSocket,
    upstream: Upstream,
    control: mpsc::UnboundedReceiver<Control>,
    link: Arc<dyn OwnerLink>,
    location: String,
}

/// A relay's IO: its socket, its upstream's timers, and its frames handed
/// to the socket task, until the upstream ends or the relay lingered idle.
async fn relay_task(
    endpoint: std::sync::Weak<Endpoint>,
    commands: mpsc::UnboundedSender<Command>,
    mut t: RelayTask,
) {
    let id = t.id;
    let backlog = Arc::new(AtomicUsize::new(0));
    let mut gate = KeyframeGate::default();
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let mut idle_until: Option<Instant> = None;
    let ended: Option<UpEnd> = loop {
        let mut wake = t.upstream.next_wake();
        if let Some(at) = idle_until {
            wake = wake.min(at);
        }
        let step = tokio::select! {
            received = t.socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    t.upstream.receive(Instant::now(), source, bytes, &mut out)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "relay socket read failed");
                    Ok(())
                }
            },
            control = t.control.recv() => match control {
                Some(Control::Keyframe) => t.upstream.request_keyframe(Instant::now(), &mut out),
                Some(Control::Idle) => {
                    idle_until = Some(Instant::now() + RELAY_LINGER);
                    Ok(())
                }
                None => break None,
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                if idle_until.is_some_and(|at| at <= now) {
                    idle_until = None;
                    match endpoint.upgrade() {
                        Some(e) if !e.relay_release(&t.stream, id) => {}
                        _ => break None,
                    }
                }
                t.upstream.tick(now, &mut out)
            }
        };
        send_out(&t.socket, &commands, id, &backlog, &mut gate, &mut out);
        if let Err(why) = step {
            break Some(why);
        }
    };
    if ended.is_none() {
        t.upstream.close(&mut out);
        send_out(&t.socket, &commands, id, &backlog, &mut gate, &mut out);
    }
    // The table frees the source; its viewers are closed at its next tick.
    let _ = commands.send(Command::Remove { id, ended: false });
    if let Some(e) = endpoint.upgrade() {
        e.relay_ended(&t.stream, id);
    }
    match ended {
        Some(why) => {
            relay_failed(why.label());
            tracing::info!(stream = %t.stream, relay = id, reason = ?why, "relay ended");
        }
        None => tracing::info!(stream = %t.stream, relay = id, "relay idle: ended"),
    }
    t.link.delete(&t.location).await;
}

/// Carries out an upstream's output: datagrams sent (never waiting), frames
/// to the socket task within [`fed::FED_BACKLOG`] (beyond it dropped and
/// counted, video resuming at a keyframe).
fn send_out(
    socket: &UdpSocket,
    commands: &mpsc::UnboundedSender<Command>,
    id: SessionId,
    backlog: &Arc<AtomicUsize>,
    gate: &mut KeyframeGate,
    out: &mut Vec<UpOut>,
) {
    for o in out.drain(..) {
        match o {
            UpOut::Transmit {
                destination,
                contents,
            } => {
                if let Err(e) = socket.try_send_to(&contents, destination) {
                    metrics::counter!("onair_webrtc_send_drops_total").increment(1);
                    tracing::debug!(%destination, error = %e, "relay send failed");
                }
            }
            UpOut::Connected => tracing::info!(relay = id, "relay connected to the owner"),
            UpOut::Frame(frame) => {
                if !gate.pass(&frame) {
                    continue;
                }
                if backlog.load(Ordering::Relaxed) >= fed::FED_BACKLOG {
                    metrics::counter!("onair_webrtc_feed_drops_total").increment(1);
                    gate.dropped(frame.kind());
                    continue;
                }
                backlog.fetch_add(1, Ordering::Relaxed);
                let backlog = backlog.clone();
                let _ = commands.send(Command::Relayed { id, frame, backlog });
            }
        }
    }
}

/// After a dropped video frame, video resumes at a keyframe.
#[derive(Debug, Default)]
struct KeyframeGate {
    video_held: bool,
}

impl KeyframeGate {
    fn pass(&mut self, f: &Forward) -> bool {
        if f.kind() != MediaKind::Video {
            return true;
        }
        if self.video_held && !f.is_keyframe() {
            return false;
        }
        self.video_held = false;
        true
    }

    fn dropped(&mut self, kind: MediaKind) {
        if kind == MediaKind::Video {
            self.video_held = true;
        }
    }
}
