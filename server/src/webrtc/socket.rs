//! The socket task: one UDP socket for every WebRTC session. It reads
//! datagrams, takes the endpoint's commands (sessions added and removed,
//! frames fed from a live pipeline), drives the [`Table`] and carries out
//! its output.

use super::*;

/// The socket task: reads datagrams, drives the table, carries out its output.
pub(super) async fn run(
    socket: UdpSocket,
    candidate: SocketAddr,
    endpoint: std::sync::Weak<Endpoint>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    timeout: Duration,
) {
    let mut table = Table::new(timeout);
    let mut feeds: HashMap<SessionId, mpsc::Sender<Media>> = HashMap::new();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let wake = table
            .next_wake()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, source)) => {
                    let bytes = buf.get(..n).unwrap_or_default();
                    table.receive(Instant::now(), source, candidate, bytes, &mut out);
                }
                Err(e) => tracing::debug!(error = %e, "WebRTC socket read failed"),
            },
            command = commands.recv() => match command {
                None => break,
                Some(Command::Add { id, rtc, feed }) => {
                    feeds.insert(id, feed);
                    table.insert(id, *rtc, Instant::now(), &mut out);
                }
                Some(Command::AddViewer { id, source, rtc }) => {
                    table.insert_as(id, Role::Viewer(source), *rtc, Instant::now(), &mut out);
                }
                Some(Command::AddFed { id }) => table.insert_fed(id),
                Some(Command::Feed { id, frame, backlog }) => {
                    table.feed(id, &frame, Instant::now(), &mut out);
                    backlog.fetch_sub(1, Ordering::Relaxed);
                }
                Some(Command::Relayed { id, frame, backlog }) => {
                    table.relay(id, &frame, Instant::now(), &mut out);
                    backlog.fetch_sub(1, Ordering::Relaxed);
                }
                Some(Command::Remove { id, ended }) => {
                    table.remove(id, &mut out);
                    if let Some(feed) = feeds.remove(&id) {
                        if ended {
                            tokio::spawn(async move { let _ = feed.send(Media::End).await; });
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(wake) => table.tick(Instant::now(), &mut out),
        }
        // Viewers of a relay want a keyframe: the relay asks the owner.
        let wants = table.take_keyframe_wants();
        if !wants.is_empty() {
            if let Some(endpoint) = endpoint.upgrade() {
                for id in wants {
                    endpoint.relay_keyframe(id);
                }
            }
        }
        for o in out.drain(..) {
            match o {
                Out::Transmit {
                    destination,
                    contents,
                } => {
                    // Never waits: a full socket buffer drops this datagram
                    // (RTP's loss, NACKed), not every session's turn.
                    if let Err(e) = socket.try_send_to(&contents, destination) {
                        metrics::counter!("onair_webrtc_send_drops_total").increment(1);
                        tracing::debug!(%destination, error = %e, "WebRTC send failed");
                    }
                }
                Out::Connected(id, peer) => {
                    if let Some(feed) = feeds.get(&id) {
                        let _ = feed.try_send(Media::Connected(peer));
                    }
                }
                Out::Frame(id, frame) => {
                    if let Some(feed) = feeds.get(&id) {
                        if feed.try_send(Media::Frame(frame)).is_err() {
                            tracing::warn!(
                                session = id,
                                "WHIP frame dropped: the pipeline is behind"
                            );
                        }
                    }
                }
                Out::Closed(id, why) => {
                    tracing::info!(session = id, reason = ?why, "WebRTC session freed");
                    // Dropping the feed ends the muxing task: a dropped encoder.
                    let publisher = feeds.remove(&id).is_some();
                    if why == Closed::ConnectTimeout {
                        if publisher {
                            refused(Transport::Whip, Reason::Timeout);
                        } else {
                            viewer_refused("timeout");
                        }
                    }
                    if let Some(endpoint) = endpoint.upgrade() {
                        endpoint.forget(id);
                    }
                }
            }
        }
        if endpoint.strong_count() == 0 {
            break;
        }
    }
}
