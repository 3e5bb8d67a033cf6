//! The events WebSocket handler: hello, access check, welcome or replay,
//! then frames both ways until either side goes away.
//!
//! Policy for bad input: a malformed frame (not JSON, unknown type, binary)
//! or a frame over [`RealtimeConfig::max_message_bytes`] gets an `error`
//! event and is ignored; the connection stays up. Ten bad frames in a row
//! close it with 4002. A frame over 16 times the limit is cut off by the
//! WebSocket layer and the connection is closed with 4013.
//!
//! [`RealtimeConfig::max_message_bytes`]: super::RealtimeConfig::max_message_bytes

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use app::events::{
    check_chat_text, close, valid_viewer_id, ClientMessage, ClientRole, Envelope, ModerationAction,
    ServerEvent, EVENTS_PROTOCOL_VERSION, HISTORY_MESSAGES,
};
use app::ingest::CloseReason;
use app::streams::{StreamState, Visibility};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{Sink, SinkExt};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::{chat_message, now_ms, Frame, Refused, Room, Rooms};
use crate::db::users::UserRow;
use crate::state::AppState;

/// Bytes read from a client socket at a time.
const READ_BUFFER: usize = 2048;
/// Frames queued for one client are written together up to this many bytes
/// (a threshold, not a preallocated buffer: an idle connection holds none of
/// it). A single frame is written at once, as with no buffer at all.
const WRITE_BUFFER: usize = 8192;
/// Frames forwarded to one client in one go at most, so that a client far
/// behind does not hold a worker thread while others wait.
const MAX_BATCH: usize = 64;
/// Time to send `hello` after connecting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bad frames in a row before the connection is closed.
const MAX_BAD_FRAMES: u32 = 10;
/// Resyncs within [`LAG_WINDOW`] before a slow client is dropped.
const MAX_LAGS: usize = 3;
const LAG_WINDOW: Duration = Duration::from_secs(60);
/// The longest timeout a moderator may give, in minutes (a week).
const MAX_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;

type Closing = (u16, &'static str, String);

/// `GET /api/v1/streams/{id}/events` (WebSocket upgrade).
pub async fn events_route(
    ws: WebSocketUpgrade,
    Path(id): Path<String>,
    headers: HeaderMap,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    State(state): State<AppState>,
) -> Response {
    let rooms = state.rooms.clone();
    // For analytics: where the viewer is (the IP is looked up, never kept).
    let source = state.analytics.source(
        peer.map(|axum::Extension(axum::extract::ConnectInfo(a))| a.ip())
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        &headers,
    );
    // The session counts only from this site (cross-site WebSocket hijacking).
    let session = crate::service::session_cookie(&headers)
        .filter(|_| crate::ingest::same_origin(&headers))
        .map(str::to_string);
    let limit = rooms.config.max_message_bytes;
    // Small buffers: tungstenite's defaults (128 KiB each way) would make
    // every idle viewer cost a quarter of a megabyte. Frames here are small;
    // larger ones are still read, into a buffer that grows for them.
    ws.max_message_size(limit.saturating_mul(16))
        .max_frame_size(limit.saturating_mul(16))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let mut conn = Conn { socket };
            let Some(_slot) = rooms.admit() else {
                conn.close(close::FULL, "full", "this server is at its connection limit; retry later")
                    .await;
                return;
            };
            if let Err((code, reason, message)) = serve(&mut conn, &state, &rooms, &id, session, source).await {
                tracing::debug!(stream = %id, code, reason, message = %message, "events connection closed");
                conn.close(code, reason, &message).await;
            }
        })
}

struct Conn {
    socket: WebSocket,
}

/// Why [`Conn::forward`] stopped taking frames from the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// No frame is waiting, or the batch is full: wait for the next one.
    Idle,
    /// The last frame sent was a rules change.
    Settings,
    /// The client fell this many frames behind the room.
    Lagged(u64),
    /// The room is gone.
    Closed,
}

/// The next frame that is ready now, without waiting.
fn ready_frame(rx: &mut broadcast::Receiver<Frame>) -> Result<Frame, Drained> {
    rx.try_recv().map_err(|e| match e {
        TryRecvError::Empty => Drained::Idle,
        TryRecvError::Lagged(n) => Drained::Lagged(n),
        TryRecvError::Closed => Drained::Closed,
    })
}

/// Runs a send, with the send timeout armed only if the send does not finish
/// at once. Almost every send does (the frame fits in the socket buffer), and
/// in a fan-out to thousands of clients a timer per send per client is work
/// for nothing. A send that has to wait gets the whole `timeout` from then.
async fn timed<T, E>(
    send: impl Future<Output = Result<T, E>>,
    timeout: Duration,
) -> Result<T, Closing> {
    let mut send = std::pin::pin!(send);
    let result = match futures::poll!(send.as_mut()) {
        Poll::Ready(r) => r,
        Poll::Pending => match tokio::time::timeout(timeout, send).await {
            Ok(r) => r,
            Err(_) => {
                return Err((
                    close::TOO_SLOW,
                    "too_slow",
                    "the connection is too slow to keep up".into(),
                ))
            }
        },
    };
    result.map_err(|_| (1000, "gone", "the connection dropped".into()))
}

/// Sends `first` and the frames already waiting behind it in the room (at
/// most [`MAX_BATCH`]), in order, then flushes once: a client that fell
/// behind catches up in one write instead of one per frame. Each frame's text
/// is the room's shared buffer (reference-counted), not a copy. Stops after a
/// rules change, so that the caller can tell this client about its moderator
/// status before anything else, and at a lag or the room's end, which the
/// caller handles once these frames are out.
async fn forward<S>(
    socket: &mut S,
    first: Frame,
    rx: &mut broadcast::Receiver<Frame>,
) -> Result<Drained, S::Error>
where
    S: Sink<Message> + Unpin,
{
    let mut frame = first;
    let mut sent = 1;
    let end = loop {
        let settings = frame.settings;
        socket.feed(Message::Text(frame.json)).await?;
        if settings {
            break Drained::Settings;
        }
        if sent == MAX_BATCH {
            break Drained::Idle;
        }
        frame = match ready_frame(rx) {
            Ok(f) => f,
            Err(end) => break end,
        };
        sent += 1;
    };
    socket.flush().await?;
    Ok(end)
}

impl Conn {
    async fn send_text(&mut self, text: Utf8Bytes, timeout: Duration) -> Result<(), Closing> {
        timed(self.socket.send(Message::Text(text)), timeout).await
    }

    /// [`forward`], with the send timeout over the whole batch.
    async fn forward(
        &mut self,
        first: Frame,
        rx: &mut broadcast::Receiver<Frame>,
        timeout: Duration,
    ) -> Result<Drained, Closing> {
        timed(forward(&mut self.socket, first, rx), timeout).await
    }

    /// Frames in order, written together (a resume's replay).
    async fn send_frames(&mut self, frames: Vec<Frame>, timeout: Duration) -> Result<(), Closing> {
        let socket = &mut self.socket;
        let send = async move {
            for f in frames {
                socket.feed(Message::Text(f.json)).await?;
            }
            socket.flush().await
        };
        timed(send, timeout).await
    }

    async fn send(&mut self, event: ServerEvent, timeout: Duration) -> Result<(), Closing> {
        let json = serde_json::to_string(&Envelope { id: None, event })
            .map_err(|e| (1011, "internal", e.to_string()))?;
        self.send_text(json.into(), timeout).await
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

    async fn close(&mut self, code: u16, reason: &str, message: &str) {
        let json = CloseReason::frame_text(reason, message);
        let frame = CloseFrame {
            code,
            reason: json.into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}

/// Who is on the other end.
struct Peer {
    user: Option<UserRow>,
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
}

async fn serve(
    conn: &mut Conn,
    state: &AppState,
    rooms: &Arc<Rooms>,
    id: &str,
    session: Option<String>,
    source: crate::analytics::Source,
) -> Result<(), Closing> {
    let internal = |e: crate::db::DbError| (1011, "internal", format!("database: {e}"));
    // 1. hello
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, conn.socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<ClientMessage>(&t).ok(),
        Ok(Some(Ok(_))) => None,
        Ok(None) | Ok(Some(Err(_))) => return Ok(()),
        Err(_) => return Err((close::BAD_HELLO, "bad_hello", "no hello within 10 s".into())),
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
    let room = rooms
        .open(id, &stream.owner_id, stream_state)
        .await
        .map_err(internal)?;
    let moderator = user
        .as_ref()
        .is_some_and(|u| room.is_moderator(&u.id, &u.role));
    if Visibility::parse(&stream.visibility) != Some(Visibility::Public)
        && Visibility::parse(&stream.visibility) != Some(Visibility::Unlisted)
        && !moderator
    {
        let valid = token.as_deref().is_some_and(|t| {
            state
                .accounts
                .playback
                .verify(id, t, crate::auth::playback::unix_now())
                .is_ok()
        });
        if !valid {
            return Err((
                close::FORBIDDEN,
                "forbidden",
                "this stream is private: open it from its watch link".into(),
            ));
        }
    }
    // 3. join: the studio of the owner (or an admin) is not a viewer.
    let is_studio = role == ClientRole::Studio
        && user
            .as_ref()
            .is_some_and(|u| u.id == room.owner_id || u.role == "admin");
    // A watch page (with its browser's viewer id) starts an analytics session.
    let viewing = viewer_id
        .as_deref()
        .filter(|v| !is_studio && role == ClientRole::Viewer && valid_viewer_id(v))
        .map(|v| (v.to_string(), source));
    if let Some((v, source)) = &viewing {
        let uid = user.as_ref().map(|u| u.id.as_str());
        state.analytics.beat(id, v, uid, *source, None, false);
    }
    let peer = Peer { user, viewing };
    let viewer_key = (!is_studio).then(|| match (&peer.user, viewer_id.as_deref()) {
        (Some(u), _) => format!("u:{}", u.id),
        (None, Some(v)) if valid_viewer_id(v) => format!("v:{v}"),
        _ => format!("c:{}", unique()),
    });
    let joined = room.join(viewer_key.as_deref(), last_id);
    let result = run(conn, state, &room, &peer, joined, last_id.is_some()).await;
    room.leave(viewer_key.as_deref());
    result
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn history(state: &AppState, room: &Room) -> Result<Vec<app::events::ChatMessage>, Closing> {
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

async fn resync(
    conn: &mut Conn,
    state: &AppState,
    room: &Room,
    timeout: Duration,
) -> Result<(), Closing> {
    let (last_id, stream_state, viewers) = room.snapshot();
    let history = history(state, room).await?;
    conn.send(
        ServerEvent::Resync {
            history,
            last_id,
            state: stream_state,
            viewers,
        },
        timeout,
    )
    .await
}

async fn run(
    conn: &mut Conn,
    state: &AppState,
    room: &Arc<Room>,
    peer: &Peer,
    joined: super::Joined,
    resuming: bool,
) -> Result<(), Closing> {
    let config = room.config;
    let timeout = config.send_timeout;
    let super::Joined {
        mut rx,
        last_id,
        replay,
        state: stream_state,
        viewers,
        settings,
    } = joined;
    let can_chat = peer
        .user
        .as_ref()
        .is_some_and(|u| room.may_post(&u.id, now_ms()));
    let history = if resuming {
        Vec::new()
    } else {
        history(state, room).await?
    };
    conn.send(
        ServerEvent::Welcome {
            version: EVENTS_PROTOCOL_VERSION,
            username: peer.user.as_ref().map(|u| u.username.clone()),
            moderator: peer.moderator(room),
            can_chat,
            state: stream_state,
            viewers,
            settings,
            history,
            last_id,
        },
        timeout,
    )
    .await?;
    match replay {
        Some(frames) => conn.send_frames(frames, timeout).await?,
        None if resuming => resync(conn, state, room, timeout).await?,
        None => {}
    }

    let mut heartbeat = tokio::time::interval(config.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut bad_frames = 0u32;
    let mut lags: Vec<Instant> = Vec::new();
    let mut was_moderator = peer.moderator(room);
    loop {
        tokio::select! {
            frame = rx.recv() => match frame.map_err(|e| match e {
                RecvError::Lagged(n) => Drained::Lagged(n),
                RecvError::Closed => Drained::Closed,
            }) {
                Ok(frame) => match conn.forward(frame, &mut rx, timeout).await? {
                    Drained::Idle => {}
                    // Named or dropped as a moderator: tell this client.
                    Drained::Settings => {
                        if peer.moderator(room) != was_moderator {
                            was_moderator = !was_moderator;
                            let can_chat = peer.user.as_ref().is_some_and(|u| room.may_post(&u.id, now_ms()));
                            conn.send(ServerEvent::You { moderator: was_moderator, can_chat }, timeout).await?;
                        }
                    }
                    Drained::Lagged(missed) => lagged(conn, state, room, &mut lags, missed, timeout).await?,
                    Drained::Closed => return Ok(()),
                },
                Err(Drained::Lagged(missed)) => lagged(conn, state, room, &mut lags, missed, timeout).await?,
                Err(_) => return Ok(()),
            },
            msg = conn.socket.recv() => {
                let msg = match msg {
                    None => return Ok(()),
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") || text.contains("too big") {
                            return Err((close::TOO_LARGE, "too_large", "a frame exceeded the size limit".into()));
                        }
                        return Ok(());
                    }
                    Some(Ok(m)) => m,
                };
                last_heard = Instant::now();
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => return Ok(()),
                    Message::Ping(_) | Message::Pong(_) => continue,
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
                timed(conn.socket.send(Message::Ping(Default::default())), timeout).await?;
            },
        }
    }
}

/// The client fell `missed` frames behind the room: it is skipped ahead with
/// a resync, or dropped if that keeps happening.
async fn lagged(
    conn: &mut Conn,
    state: &AppState,
    room: &Room,
    lags: &mut Vec<Instant>,
    missed: u64,
    timeout: Duration,
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
    resync(conn, state, room, timeout).await
}

/// One client message. The outer error closes the connection; the inner
/// one is sent to this client as an `error`.
async fn handle(
    conn: &mut Conn,
    state: &AppState,
    room: &Arc<Room>,
    peer: &Peer,
    msg: ClientMessage,
) -> Result<Result<(), Refused>, Closing> {
    let timeout = room.config.send_timeout;
    let db_failed = |e: crate::db::DbError| {
        tracing::error!(stream = %room.stream_id, error = %e, "chat database error");
        Refused::new("unavailable", "The chat could not save that; try again.")
    };
    let need_moderator = || -> Result<&UserRow, Refused> {
        match &peer.user {
            Some(u) if peer.moderator(room) => Ok(u),
            Some(_) => Err(Refused::new("forbidden", "Only moderators can do that.")),
            None => Err(Refused::new("sign_in_required", "Sign in first.")),
        }
    };
    match msg {
        ClientMessage::Ping => {
            conn.send(ServerEvent::Pong, timeout).await?;
            Ok(Ok(()))
        }
        ClientMessage::Beacon { leave, quality } => {
            if let Some((viewer, source)) = &peer.viewing {
                let uid = peer.user.as_ref().map(|u| u.id.as_str());
                state.analytics.beat(
                    &room.stream_id,
                    viewer,
                    uid,
                    *source,
                    quality.as_ref(),
                    leave,
                );
            }
            Ok(Ok(()))
        }
        ClientMessage::Hello { .. } => {
            Ok(Err(Refused::new("bad_message", "hello was already sent")))
        }
        ClientMessage::Chat { text } => {
            let Some(user) = &peer.user else {
                return Ok(Err(Refused::new("sign_in_required", "Sign in to chat.")));
            };
            let text = match check_chat_text(&text) {
                Ok(t) => t,
                Err(m) => return Ok(Err(Refused::new("invalid_message", m))),
            };
            let now = now_ms();
            if let Err(r) = room.check_post(&user.id, peer.moderator(room), text, now) {
                return Ok(Err(r));
            }
            let row = match state
                .db
                .insert_chat(&room.stream_id, &user.id, &user.username, text, now)
                .await
            {
                Ok(r) => r,
                Err(e) => return Ok(Err(db_failed(e))),
            };
            metrics::counter!("onair_chat_messages_total").increment(1);
            room.broadcast(ServerEvent::Chat {
                message: chat_message(row, peer.moderator(room)),
            });
            Ok(Ok(()))
        }
        ClientMessage::Delete { message_id } => {
            let me = match need_moderator() {
                Ok(u) => u,
                Err(r) => return Ok(Err(r)),
            };
            let row = match state
                .db
                .delete_chat(&room.stream_id, &message_id, &me.id)
                .await
            {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Ok(Err(Refused::new(
                        "not_found",
                        "That message is gone already.",
                    )))
                }
                Err(e) => return Ok(Err(db_failed(e))),
            };
            let detail: String = row.text.chars().take(200).collect();
            if let Err(e) = state
                .db
                .log_moderation(
                    &room.stream_id,
                    &me.id,
                    "delete",
                    Some(&row.author_id),
                    &detail,
                )
                .await
            {
                tracing::error!(error = %e, "could not log a moderation action");
            }
            room.broadcast(ServerEvent::ChatDeleted {
                message_id: row.id.clone(),
            });
            room.broadcast(ServerEvent::Moderation {
                action: ModerationAction::Delete,
                username: row.username,
                by: me.username.clone(),
                until_ms: None,
            });
            Ok(Ok(()))
        }
        ClientMessage::Timeout { username, minutes } => {
            if !(1..=MAX_TIMEOUT_MINUTES).contains(&minutes) {
                return Ok(Err(Refused::new(
                    "invalid_message",
                    format!("A timeout is 1 to {MAX_TIMEOUT_MINUTES} minutes."),
                )));
            }
            let until = now_ms() + i64::from(minutes) * 60_000;
            moderate(
                state,
                room,
                peer,
                &username,
                ModerationAction::Timeout,
                Some(until),
                &format!("{minutes} min"),
            )
            .await
        }
        ClientMessage::Ban { username } => {
            moderate(
                state,
                room,
                peer,
                &username,
                ModerationAction::Ban,
                None,
                "",
            )
            .await
        }
        ClientMessage::Unban { username } => {
            moderate(
                state,
                room,
                peer,
                &username,
                ModerationAction::Unban,
                None,
                "",
            )
            .await
        }
    }
}

async fn moderate(
    state: &AppState,
    room: &Arc<Room>,
    peer: &Peer,
    username: &str,
    action: ModerationAction,
    until: Option<i64>,
    detail: &str,
) -> Result<Result<(), Refused>, Closing> {
    let me = match &peer.user {
        Some(u) if peer.moderator(room) => u,
        Some(_) => {
            return Ok(Err(Refused::new(
                "forbidden",
                "Only moderators can do that.",
            )))
        }
        None => return Ok(Err(Refused::new("sign_in_required", "Sign in first."))),
    };
    let failed = |e: crate::db::DbError| {
        tracing::error!(stream = %room.stream_id, error = %e, "moderation database error");
        Ok(Err(Refused::new(
            "unavailable",
            "That did not go through; try again.",
        )))
    };
    let target = match state.db.user_by_username(username).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Ok(Err(Refused::new(
                "not_found",
                format!("There is no user {username}."),
            )))
        }
        Err(e) => return failed(e),
    };
    if action != ModerationAction::Unban && room.is_moderator(&target.id, &target.role) {
        return Ok(Err(Refused::new(
            "forbidden",
            "Moderators cannot be timed out or banned.",
        )));
    }
    let (name, stored) = match action {
        ModerationAction::Unban => (
            "unban",
            state
                .db
                .remove_chat_ban(&room.stream_id, &target.id)
                .await
                .map(|_| ()),
        ),
        ModerationAction::Ban => (
            "ban",
            state
                .db
                .set_chat_ban(&room.stream_id, &target.id, None, &me.id)
                .await,
        ),
        _ => (
            "timeout",
            state
                .db
                .set_chat_ban(&room.stream_id, &target.id, until, &me.id)
                .await,
        ),
    };
    if let Err(e) = stored {
        return failed(e);
    }
    room.set_ban(&target.id, until, action == ModerationAction::Unban);
    if let Err(e) = state
        .db
        .log_moderation(&room.stream_id, &me.id, name, Some(&target.id), detail)
        .await
    {
        tracing::error!(error = %e, "could not log a moderation action");
    }
    room.broadcast(ServerEvent::Moderation {
        action,
        username: target.username,
        by: me.username.clone(),
        until_ms: until,
    });
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u64, settings: bool) -> Frame {
        Frame {
            id,
            json: format!("{{\"id\":{id}}}").into(),
            settings,
        }
    }

    fn texts(sent: &[Message]) -> Vec<String> {
        sent.iter()
            .map(|m| match m {
                Message::Text(t) => t.to_string(),
                other => panic!("not text: {other:?}"),
            })
            .collect()
    }

    /// The first frame, as the connection's `recv` would hand it over.
    async fn first(rx: &mut broadcast::Receiver<Frame>) -> Frame {
        rx.recv().await.expect("a frame")
    }

    #[tokio::test]
    async fn a_batch_keeps_order_and_ids_and_shares_the_text() {
        let (tx, mut rx) = broadcast::channel(256);
        let frames: Vec<Frame> = (1..=5).map(|id| frame(id, false)).collect();
        for f in &frames {
            tx.send(f.clone()).unwrap();
        }
        let mut sent: Vec<Message> = Vec::new();
        let f = first(&mut rx).await;
        assert_eq!(forward(&mut sent, f, &mut rx).await.unwrap(), Drained::Idle);
        assert_eq!(
            texts(&sent),
            (1..=5)
                .map(|id| format!("{{\"id\":{id}}}"))
                .collect::<Vec<_>>()
        );
        // Each client's frame is the room's buffer, not a copy.
        for (m, f) in sent.iter().zip(&frames) {
            let Message::Text(t) = m else { unreachable!() };
            assert_eq!(t.as_str().as_ptr(), f.json.as_str().as_ptr());
        }
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn a_batch_has_a_limit_and_the_rest_follows() {
        let (tx, mut rx) = broadcast::channel(256);
        for id in 0..100 {
            tx.send(frame(id, false)).unwrap();
        }
        let mut sent: Vec<Message> = Vec::new();
        let f = first(&mut rx).await;
        assert_eq!(forward(&mut sent, f, &mut rx).await.unwrap(), Drained::Idle);
        assert_eq!(sent.len(), MAX_BATCH);
        let f = first(&mut rx).await;
        forward(&mut sent, f, &mut rx).await.unwrap();
        assert_eq!(
            texts(&sent),
            (0..100)
                .map(|id| format!("{{\"id\":{id}}}"))
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_batch_stops_after_a_rules_change() {
        let (tx, mut rx) = broadcast::channel(256);
        tx.send(frame(1, false)).unwrap();
        tx.send(frame(2, true)).unwrap();
        tx.send(frame(3, false)).unwrap();
        let mut sent: Vec<Message> = Vec::new();
        let f = first(&mut rx).await;
        assert_eq!(
            forward(&mut sent, f, &mut rx).await.unwrap(),
            Drained::Settings
        );
        assert_eq!(texts(&sent), ["{\"id\":1}", "{\"id\":2}"]);
        let f = first(&mut rx).await;
        assert_eq!(f.id, 3, "the next batch starts after it");
    }

    #[tokio::test]
    async fn a_lag_in_a_batch_ends_it_after_the_frames_before() {
        let (tx, mut rx) = broadcast::channel(16);
        tx.send(frame(1, false)).unwrap();
        let f = first(&mut rx).await;
        // The room runs 40 frames ahead while this client is busy.
        for id in 2..42 {
            tx.send(frame(id, false)).unwrap();
        }
        let mut sent: Vec<Message> = Vec::new();
        let end = forward(&mut sent, f, &mut rx).await.unwrap();
        assert!(matches!(end, Drained::Lagged(n) if n > 0), "{end:?}");
        assert_eq!(texts(&sent), ["{\"id\":1}"]);
        drop(tx);
        let f = first(&mut rx).await;
        let mut after: Vec<Message> = Vec::new();
        assert_eq!(
            forward(&mut after, f, &mut rx).await.unwrap(),
            Drained::Closed,
            "then the newest 16, and the room's end"
        );
        assert_eq!(
            texts(&after),
            (26..42)
                .map(|id| format!("{{\"id\":{id}}}"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_send_that_finishes_at_once_sets_no_timer_and_a_stuck_one_times_out() {
        // Without a time driver, arming the timeout would panic: a send that
        // finishes at once never does.
        let no_timers = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        no_timers.block_on(async {
            let ok = timed(async { Ok::<_, ()>(7) }, Duration::from_secs(10)).await;
            assert_eq!(ok.unwrap(), 7);
            let gone = timed(async { Err::<(), _>(()) }, Duration::from_secs(10)).await;
            assert_eq!(gone.unwrap_err().0, 1000);
        });
        let timers = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        timers.block_on(async {
            let stuck = timed(
                std::future::pending::<Result<(), ()>>(),
                Duration::from_millis(20),
            )
            .await;
            assert_eq!(stuck.unwrap_err().0, close::TOO_SLOW);
        });
    }
}
