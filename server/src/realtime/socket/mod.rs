//! The events WebSocket handler: hello, access check, welcome or replay,
//! then frames both ways until either side goes away.
//!
//! The connection's task reads the client's frames (tungstenite, over
//! [`SocketIo`]) and writes its own events through the connection's
//! [`Outbox`]; room frames reach the outbox from the room's fan-out thread
//! without this task (see [`super::outbox`]). The task is woken for them
//! only when the socket did not take one at once, when the client lagged,
//! or after a rules change.
//!
//! Policy for bad input: a malformed frame (not JSON, unknown type, binary)
//! or a frame over [`RealtimeConfig::max_message_bytes`] gets an `error`
//! event and is ignored; the connection stays up. Ten bad frames in a row
//! close it with 4002. A frame over 16 times the limit is cut off by the
//! WebSocket layer and the connection is closed with 4013.
//!
//! [`RealtimeConfig::max_message_bytes`]: super::RealtimeConfig::max_message_bytes

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::protocol::close::CloseReason;
use app::protocol::events::{
    check_chat_text, close, valid_viewer_id, ClientMessage, ClientRole, Envelope, ModerationAction,
    ServerEvent, EVENTS_PROTOCOL_VERSION, HISTORY_MESSAGES,
};
use app::protocol::StreamState;
use app::streams::Visibility;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::outbox::{FlushError, Outbox, SocketIo};
use super::upgrade::Upgrade;
use super::{chat_message, now_ms, wire, Refused, Room, Rooms};
use crate::connections::Admission;
use crate::db::users::UserRow;

mod commands;
use commands::handle;

/// Bytes read from a client socket at a time.
const READ_BUFFER: usize = 2048;
/// The longest a closing frame may wait for the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bad frames in a row before the connection is closed.
const MAX_BAD_FRAMES: u32 = 10;
/// Resyncs within [`LAG_WINDOW`] before a slow client is dropped.
const MAX_LAGS: usize = 3;
const LAG_WINDOW: Duration = Duration::from_secs(60);
/// The longest timeout a moderator may give, in minutes (a week).
const MAX_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;

type Closing = (u16, &'static str, String);

/// What an events socket needs from the server, handed over by the edge
/// (`http::sockets`).
#[derive(Clone)]
pub struct EventsDeps {
    /// Streams, sessions, users and chat rows.
    pub db: crate::db::Database,
    /// Every room on this node.
    pub rooms: Arc<Rooms>,
    /// Viewer sessions and beacons.
    pub analytics: Arc<crate::analytics::Analytics>,
    /// Playback tokens for private streams.
    pub accounts: Arc<crate::auth::Accounts>,
    /// How long a new socket may take to say hello.
    pub hello_timeout: Duration,
}

/// `GET /api/v1/streams/{id}/events` (WebSocket upgrade), once the edge has
/// decided the session and the socket's place (`http::sockets`).
pub fn events_route(
    upgrade: Upgrade,
    id: String,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
    state: EventsDeps,
    admission: Admission,
) -> Response {
    let rooms = state.rooms.clone();
    // For analytics: where the viewer is (the IP is looked up, never kept).
    let source = state.analytics.source(
        peer.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip()),
        headers,
    );
    let (session, staff) = (admission.session, admission.staff);
    upgrade.on_upgrade(move |tcp, prefix| async move {
        let mut conn = match Conn::new(tcp, prefix, &rooms).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "events connection failed at the start");
                return;
            }
        };
        // Held while the socket is open.
        let Some(_place) = admission.permit else {
            conn.close(
                close::TOO_MANY_CONNECTIONS,
                "too_many_connections",
                "too many events sockets from this address; retry later",
            )
            .await;
            return;
        };
        if let Err((code, reason, message)) = serve(&mut conn, &state, &rooms, &id, session, staff, source).await {
            tracing::debug!(stream = %id, code, reason, message = %message, "events connection closed");
            conn.close(code, reason, &message).await;
        }
    })
}

struct Conn {
    ws: WebSocketStream<SocketIo>,
    outbox: Arc<Outbox>,
}

fn flush_error(e: FlushError) -> Closing {
    match e {
        FlushError::TooSlow => (
            close::TOO_SLOW,
            "too_slow",
            "the connection is too slow to keep up".into(),
        ),
        FlushError::Gone => (1000, "gone", "the connection dropped".into()),
    }
}

impl Conn {
    async fn new(tcp: TcpStream, prefix: Bytes, rooms: &Rooms) -> std::io::Result<Conn> {
        tcp.set_nodelay(true)?;
        // The HTTP layer's read buffer (kilobytes, usually empty by now) is
        // not kept alive for the connection's lifetime.
        let prefix = if prefix.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(&prefix)
        };
        let limit = rooms.config.max_message_bytes;
        let (read, write) = tcp.into_split();
        let outbox = Arc::new(Outbox::new(write, rooms.config.client_queue));
        // Small buffers: frames here are small; larger ones are still read,
        // into a buffer that grows for them. Writes go through the outbox.
        let config = WebSocketConfig::default()
            .max_message_size(Some(limit.saturating_mul(16)))
            .max_frame_size(Some(limit.saturating_mul(16)))
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let io = SocketIo::new(prefix, read, outbox.clone());
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        Ok(Conn { ws, outbox })
    }

    /// Writes what is queued (the socket may take it all at once).
    async fn flush(&self, timeout: Duration) -> Result<(), Closing> {
        self.outbox.flush(timeout).await.map_err(flush_error)
    }

    async fn send(&mut self, event: ServerEvent, timeout: Duration) -> Result<(), Closing> {
        let json = serde_json::to_string(&Envelope { id: None, event })
            .map_err(|e| (1011, "internal", e.to_string()))?;
        self.outbox.push(wire::text(&json));
        self.flush(timeout).await
    }

    async fn error(&mut self, code: &str, message: &str, timeout: Duration) -> Result<(), Closing> {
        self.send(
            ServerEvent::Error {
                code: code.into(),
                message: message.into(),
            },
            timeout,
        )
        .await
    }

    /// Sends a close frame (after whatever was queued) and stops taking
    /// room frames.
    async fn close(&mut self, code: u16, reason: &str, message: &str) {
        self.outbox.open(Vec::new());
        self.outbox
            .push(wire::close(code, &CloseReason::frame_text(reason, message)));
        let _ = self.outbox.flush(CLOSE_TIMEOUT).await;
        self.outbox.close();
    }
}

/// Who is on the other end.
struct Peer {
    user: Option<UserRow>,
    /// The playback token the `hello` carried.
    token: Option<String>,
    /// A watch page's analytics session: its viewer id and origin.
    viewing: Option<(String, crate::analytics::Source)>,
}

impl Peer {
    /// Asked each time: the owner may name or drop moderators meanwhile.
    fn moderator(&self, room: &Room) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| room.is_moderator(&u.id, &u.role))
    }

    /// Whether this peer may be in the room now: the stream is public or
    /// unlisted, or the peer moderates it (owner and admins included), or
    /// its playback token is valid now. Asked at `hello` and again whenever
    /// the stream turns private.
    fn may_watch(&self, state: &EventsDeps, room: &Room) -> bool {
        !room.is_private()
            || self.moderator(room)
            || self.token.as_deref().is_some_and(|t| {
                state
                    .accounts
                    .playback
                    .verify(&room.stream_id, t, crate::auth::playback::unix_now())
                    .is_ok()
            })
    }
}

/// The close for a peer that may not (or no longer) watch a private stream.
fn forbidden() -> Closing {
    (
        close::FORBIDDEN,
        "forbidden",
        "this stream is private: open it from its watch link".into(),
    )
}

async fn serve(
    conn: &mut Conn,
    state: &EventsDeps,
    rooms: &Arc<Rooms>,
    id: &str,
    session: Option<String>,
    staff: bool,
    source: crate::analytics::Source,
) -> Result<(), Closing> {
    let internal = |e: crate::db::DbError| (1011, "internal", format!("database: {e}"));
    // 1. hello, within the hello timeout (which frees the socket's place)
    let hello_timeout = state.hello_timeout;
    let hello = match tokio::time::timeout(hello_timeout, conn.ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ClientMessage>(&t).ok(),
        Ok(Some(Ok(_))) => None,
        Ok(None) | Ok(Some(Err(_))) => return Ok(()),
        Err(_) => {
            return Err((
                close::HELLO_TIMEOUT,
                "hello_timeout",
                format!("no hello within {} s", hello_timeout.as_secs()),
            ))
        }
    };
    let Some(ClientMessage::Hello {
        version,
        role,
        viewer_id,
        token,
        last_id,
    }) = hello
    else {
        return Err((
            close::BAD_HELLO,
            "bad_hello",
            "the first message must be a hello".into(),
        ));
    };
    if version != EVENTS_PROTOCOL_VERSION {
        return Err((
            close::BAD_HELLO,
            "bad_version",
            format!("this server speaks events protocol {EVENTS_PROTOCOL_VERSION}"),
        ));
    }
    // The node's connection limit counts sockets that said hello, except the
    // owner's and admins': silent sockets and viewers never lock them out.
    let _slot = if staff {
        None
    } else {
        Some(rooms.admit().ok_or((
            close::FULL,
            "full",
            "this server is at its connection limit; retry later".to_string(),
        ))?)
    };
    // 2. the stream and access to it
    let stream = state.db.get_stream(id).await.map_err(internal)?.ok_or((
        close::NOT_FOUND,
        "not_found",
        format!("no stream {id}"),
    ))?;
    let user = match &session {
        Some(s) => state
            .db
            .session_user(&crate::auth::session_hash(s))
            .await
            .map_err(internal)?,
        None => None,
    };
    let stream_state = StreamState::parse(&stream.state).unwrap_or(StreamState::Idle);
    let private = !matches!(
        Visibility::parse(&stream.visibility),
        Some(Visibility::Public | Visibility::Unlisted)
    );
    let room = rooms
        .open(id, &stream.owner_id, stream_state, private)
        .await
        .map_err(internal)?;
    let mut peer = Peer {
        user,
        token,
        viewing: None,
    };
    if !peer.may_watch(state, &room) {
        return Err(forbidden());
    }
    let user = &peer.user;
    // 3. join: the studio of the owner (or an admin) is not a viewer.
    let is_studio = role == ClientRole::Studio
        && user
            .as_ref()
            .is_some_and(|u| crate::auth::owner_or_admin(&u.id, &u.role, &room.owner_id));
    // A watch page (with its browser's viewer id) starts an analytics session.
    let viewing = viewer_id
        .as_deref()
        .filter(|v| !is_studio && role == ClientRole::Viewer && valid_viewer_id(v))
        .map(|v| (v.to_string(), source));
    if let Some((v, source)) = &viewing {
        let uid = user.as_ref().map(|u| u.id.as_str());
        state.analytics.beat(id, v, uid, *source, None, false);
    }
    peer.viewing = viewing;
    let viewer_key = (!is_studio).then(|| match (&peer.user, viewer_id.as_deref()) {
        (Some(u), _) => format!("u:{}", u.id),
        (None, Some(v)) if valid_viewer_id(v) => format!("v:{v}"),
        _ => format!("c:{}", super::next_conn()),
    });
    // Leaves the room when dropped, however this task ends.
    let (member, mut joined) = room.enter(viewer_key.as_deref(), last_id, Some(&conn.outbox));
    if let Some(count) = rooms.last_count(id) {
        // Cluster mode: the count across nodes, as of the last tick.
        joined.viewers = joined.viewers.max(count);
    }
    let result = run(conn, state, &room, &peer, joined, last_id.is_some()).await;
    conn.outbox.close();
    drop(member);
    result
}

async fn history(
    state: &EventsDeps,
    room: &Room,
) -> Result<Vec<app::protocol::events::ChatMessage>, Closing> {
    let rows = state
        .db
        .chat_history(&room.stream_id, HISTORY_MESSAGES as i64)
        .await
        .map_err(|e| (1011, "internal", format!("database: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let m = room.is_moderator(&r.author_id, "");
            chat_message(r, m)
        })
        .collect())
}

fn text_frame(event: ServerEvent) -> Result<Bytes, Closing> {
    serde_json::to_string(&Envelope { id: None, event })
        .map(|j| wire::text(&j))
        .map_err(|e| (1011, "internal", e.to_string()))
}

async fn run(
    conn: &mut Conn,
    state: &EventsDeps,
    room: &Arc<Room>,
    peer: &Peer,
    joined: super::Joined,
    resuming: bool,
) -> Result<(), Closing> {
    let config = room.config;
    let timeout = config.send_timeout;
    let super::Joined {
        conn: conn_id,
        last_id,
        replay,
        state: stream_state,
        broadcaster_away,
        viewers,
        settings,
    } = joined;
    let can_chat = peer
        .user
        .as_ref()
        .is_some_and(|u| room.may_post(&u.id, now_ms()));
    // Read after joining: a message posted meanwhile is in the history and
    // follows as a frame too; clients show it once (same id).
    let history = if resuming && replay.is_some() {
        Vec::new()
    } else {
        history(state, room).await?
    };
    let (welcome_history, resync_history) = if resuming {
        (Vec::new(), history)
    } else {
        (history, Vec::new())
    };
    // What the welcome says is what later changes are measured against: a
    // change between here and the loop below must still be told.
    let mut was_moderator = peer.moderator(room);
    let mut first = vec![text_frame(ServerEvent::Welcome {
        version: EVENTS_PROTOCOL_VERSION,
        username: peer.user.as_ref().map(|u| u.username.clone()),
        moderator: was_moderator,
        can_chat,
        state: stream_state,
        broadcaster_away,
        viewers,
        settings,
        history: welcome_history,
        last_id,
    })?];
    match replay {
        Some(frames) => first.extend(frames.into_iter().map(|f| f.wire)),
        // The resume point is gone: a resync as of the join.
        None if resuming => first.push(text_frame(ServerEvent::Resync {
            history: resync_history,
            last_id,
            state: stream_state,
            broadcaster_away,
            viewers,
        })?),
        None => {}
    }
    // The welcome (and replay) first, then the room's frames since the join.
    conn.outbox.open(first);
    conn.flush(timeout).await?;

    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut bad_frames = 0u32;
    let mut lags: Vec<Instant> = Vec::new();
    loop {
        let signals = conn.outbox.signals();
        // A lagged client may have missed a rules or access change.
        let recheck = signals.settings || signals.lagged.is_some();
        if let Some(missed) = signals.lagged {
            lagged(conn, state, room, conn_id, &mut lags, missed).await?;
        }
        // The stream turned private: only those who may watch it stay.
        if recheck && !peer.may_watch(state, room) {
            return Err(forbidden());
        }
        // Named or dropped as a moderator: tell this client.
        if recheck && peer.moderator(room) != was_moderator {
            was_moderator = !was_moderator;
            let can_chat = peer
                .user
                .as_ref()
                .is_some_and(|u| room.may_post(&u.id, now_ms()));
            conn.send(
                ServerEvent::You {
                    moderator: was_moderator,
                    can_chat,
                },
                timeout,
            )
            .await?;
        }
        tokio::select! {
            // The socket did not take a room frame at once, or a lag or a
            // rules change: write what waits (the loop then looks at the rest).
            () = conn.outbox.wanted() => conn.flush(timeout).await?,
            msg = conn.ws.next() => {
                let msg = match msg {
                    None => return Ok(()),
                    Some(Err(WsError::Capacity(_))) => {
                        return Err((close::TOO_LARGE, "too_large", "a frame exceeded the size limit".into()));
                    }
                    Some(Err(_)) => return Ok(()),
                    Some(Ok(m)) => m,
                };
                last_heard = Instant::now();
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => return Ok(()),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    Message::Binary(_) => {
                        bad_frames += 1;
                        conn.error("bad_message", "binary frames are not part of this protocol", timeout).await?;
                        if bad_frames >= MAX_BAD_FRAMES {
                            return Err((close::PROTOCOL, "protocol", "too many malformed frames".into()));
                        }
                        continue;
                    }
                };
                if text.len() > config.max_message_bytes {
                    bad_frames += 1;
                    conn.error("too_large", &format!("frames are at most {} bytes", config.max_message_bytes), timeout).await?;
                } else {
                    match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(m) => {
                            bad_frames = 0;
                            if let Err(r) = handle(conn, state, room, peer, m).await? {
                                conn.error(r.code, &r.message, timeout).await?;
                            }
                        }
                        Err(e) => {
                            bad_frames += 1;
                            conn.error("bad_message", &format!("not a valid message: {e}"), timeout).await?;
                        }
                    }
                }
                if bad_frames >= MAX_BAD_FRAMES {
                    return Err((close::PROTOCOL, "protocol", "too many malformed frames".into()));
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.heartbeat * 3 {
                    return Err((close::DEAD_PEER, "dead_peer", "no answer to heartbeats".into()));
                }
                conn.outbox.push(wire::ping());
                conn.flush(timeout).await?;
            },
        }
    }
}

/// The client fell `missed` frames behind the room: it is skipped ahead with
/// a resync, or dropped if that keeps happening.
async fn lagged(
    conn: &mut Conn,
    state: &EventsDeps,
    room: &Room,
    conn_id: u64,
    lags: &mut Vec<Instant>,
    missed: u64,
) -> Result<(), Closing> {
    let now = Instant::now();
    lags.retain(|t| now.duration_since(*t) < LAG_WINDOW);
    lags.push(now);
    metrics::counter!("onair_events_lagged_total").increment(1);
    if lags.len() > MAX_LAGS {
        return Err((
            close::TOO_SLOW,
            "too_slow",
            format!("fell behind the room {} times in a minute", lags.len()),
        ));
    }
    tracing::debug!(stream = %room.stream_id, missed, "slow events client skipped ahead");
    conn.outbox.resyncing();
    // The newest id before the history is read: the frames after it follow
    // the resync, so nothing posted meanwhile is missed.
    let since = room.snapshot().0;
    let history = history(state, room).await?;
    room.resync(conn_id, &conn.outbox, since, history);
    Ok(())
}
