//! The ingest WebSocket handler's IO: it reads the socket, asks the sans-IO
//! `ingest::protocol` what each message means (hello, chunks, resends, the
//! byte budget, periods, end), checks the credentials, feeds the pipeline,
//! acks, and closes with a code plus JSON reason for every refusal.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::protocol::close::CloseReason;
use app::protocol::ingest::{close, IngestLimits as WireLimits, ServerMessage};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;

use super::protocol::{read_hello, Hello, Incoming, Receiver, Refusal, Step};
use super::{AttachError, IngestHub, Session};
use crate::connections::Admission;
use crate::media::demux::Feed;

/// `GET /api/v1/streams/{id}/ingest` (WebSocket upgrade), once the edge has
/// decided the session and the socket's place (`http::sockets`).
pub fn ingest_route(
    ws: WebSocketUpgrade,
    id: String,
    headers: &HeaderMap,
    hub: Arc<IngestHub>,
    hello_timeout: Duration,
    admission: Admission,
) -> Response {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    // The owner's own studio page may publish with its session instead of the
    // token (the session counts only from this site).
    let session = admission.session;
    ws.max_message_size(hub.limits.max_message_bytes)
        .max_frame_size(hub.limits.max_message_bytes)
        .on_upgrade(move |socket| async move {
            let mut conn = Conn { socket };
            // Held while the socket is open.
            let Some(_place) = admission.permit else {
                conn.close(
                    close::TOO_MANY_CONNECTIONS,
                    "too_many_connections",
                    "too many ingest sockets from this address; retry later",
                )
                .await;
                return;
            };
            let auth = Credentials { bearer, session };
            if let Err((code, reason, message)) = serve(&mut conn, &hub, hello_timeout, &id, auth).await {
                tracing::info!(stream = %id, code, reason, message = %message, "ingest connection closed");
                conn.close(code, reason, &message).await;
            }
        })
}

struct Conn {
    socket: WebSocket,
}

/// What the upgrade request carried for authentication.
struct Credentials {
    bearer: Option<String>,
    session: Option<String>,
}

/// A signed-in owner or admin may publish without the token.
async fn authorize_session(
    db: &crate::db::Database,
    id: &str,
    session: &str,
) -> Result<(), Refusal> {
    let internal = |e: crate::db::DbError| (close::INTERNAL, "internal", format!("database: {e}"));
    let user = db
        .session_user(&crate::auth::session_hash(session))
        .await
        .map_err(internal)?
        .ok_or((
            close::UNAUTHORIZED,
            "unauthorized",
            "no ingest token, and the session has expired: sign in again".to_string(),
        ))?;
    let stream = db.get_stream(id).await.map_err(internal)?.ok_or((
        close::NOT_FOUND,
        "not_found",
        format!("no stream {id}"),
    ))?;
    if crate::auth::owner_or_admin(&user.id, &user.role, &stream.owner_id) {
        Ok(())
    } else {
        Err((
            close::UNAUTHORIZED,
            "unauthorized",
            "only the stream's owner or an admin may publish to it".to_string(),
        ))
    }
}

impl Conn {
    async fn send(&mut self, msg: &ServerMessage) -> Result<(), Refusal> {
        let text =
            serde_json::to_string(msg).map_err(|e| (close::INTERNAL, "internal", e.to_string()))?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| {
                (
                    close::INTERNAL,
                    "internal",
                    "the connection dropped".to_string(),
                )
            })
    }

    async fn close(&mut self, code: u16, reason: &str, message: &str) {
        // A close reason is limited to 123 bytes: shorten the message to fit.
        let json = CloseReason::frame_text(reason, message);
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(json),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }

    /// The next message, or a refusal on timeout, size violation or disconnect (`None`).
    async fn recv(&mut self, idle: Duration) -> Result<Option<Message>, Refusal> {
        match tokio::time::timeout(idle, self.socket.recv()).await {
            Err(_) => Err((
                close::IDLE,
                "idle",
                format!("nothing received for {} s", idle.as_secs()),
            )),
            Ok(None) => Ok(None),
            Ok(Some(Ok(m))) => Ok(Some(m)),
            Ok(Some(Err(e))) => {
                let text = e.to_string();
                if text.contains("too long")
                    || text.contains("Space limit")
                    || text.contains("too big")
                {
                    Err((
                        close::TOO_LARGE,
                        "too_large",
                        "a message exceeded the size limit".into(),
                    ))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

async fn serve(
    conn: &mut Conn,
    hub: &Arc<IngestHub>,
    hello_timeout: Duration,
    id: &str,
    auth: Credentials,
) -> Result<(), Refusal> {
    let limits = hub.limits;
    // 1. hello, within the hello timeout (which frees the socket's place)
    let first = tokio::time::timeout(hello_timeout, conn.recv(limits.idle_timeout))
        .await
        .map_err(|_| {
            (
                close::HELLO_TIMEOUT,
                "hello_timeout",
                format!("no hello within {} s", hello_timeout.as_secs()),
            )
        })?;
    let hello = match first? {
        Some(Message::Text(t)) => read_hello(Incoming::Text(&t), crate::clock::now_ms())?,
        Some(Message::Binary(b)) => read_hello(Incoming::Binary(&b), crate::clock::now_ms())?,
        Some(_) => {
            return Err((
                close::PROTOCOL,
                "protocol",
                "the first message must be a text hello".into(),
            ))
        }
        None => return Ok(()),
    };
    let Hello {
        token,
        capture_start_ms,
        resume_after,
        new_period,
    } = hello;
    // 2. auth (the token is never logged)
    match (
        auth.bearer.or(token).filter(|t| !t.is_empty()),
        auth.session,
    ) {
        (Some(token), _) => match hub.db.check_ingest_token(id, &token).await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                return Err((
                    close::UNAUTHORIZED,
                    "unauthorized",
                    "wrong ingest token".into(),
                ))
            }
            Ok(None) => return Err((close::NOT_FOUND, "not_found", format!("no stream {id}"))),
            Err(e) => return Err((close::INTERNAL, "internal", format!("database: {e}"))),
        },
        (None, Some(session)) => authorize_session(&hub.db, id, &session).await?,
        (None, None) => {
            return Err((
                close::UNAUTHORIZED,
                "unauthorized",
                "no ingest token".into(),
            ))
        }
    }
    // 3. attach (the publisher detaches when dropped, however this ends)
    let (publisher, next_seq, is_new) = hub
        .attach_owned(id, capture_start_ms, resume_after)
        .await
        .map_err(|e| match e {
            AttachError::AlreadyPublishing => (
                close::ALREADY_PUBLISHING,
                "already_publishing",
                e.to_string(),
            ),
            AttachError::ShuttingDown => (close::SERVICE_RESTART, "server_restart", e.to_string()),
            _ => (close::PROTOCOL, "protocol", e.to_string()),
        })?;
    let session = publisher.session().clone();
    session.health().set_protocol("websocket");
    if is_new {
        // Viewers and the studio see "live" as soon as the publisher is told it is.
        hub.set_state(id, app::protocol::StreamState::Live).await;
    }
    let marked = new_period && !is_new;
    if marked {
        // The recorder restarted while disconnected: the chunk at next_seq
        // starts a new container. (A new session starts fresh anyway.)
        start_period(&session, capture_start_ms).await?;
    }
    let result = publish(
        conn,
        hub,
        &session,
        next_seq,
        capture_start_ms,
        marked,
        is_new,
    )
    .await;
    if let Ok(true) = result {
        publisher.ended();
    }
    result.map(|_| ())
}

/// Tells the pipeline that the next chunk starts a new container.
async fn start_period(session: &Arc<Session>, capture_start_ms: i64) -> Result<(), Refusal> {
    let Some(tx) = session.sender() else {
        return Err((
            close::INTERNAL,
            "internal",
            "the stream has already ended".into(),
        ));
    };
    tx.send(Feed::Period {
        capture_start_ms: Some(capture_start_ms),
    })
    .await
    .map_err(|_| {
        (
            close::BAD_MEDIA,
            "bad_media",
            "the media pipeline stopped".into(),
        )
    })
}

/// Receives chunks until `end` (returns `Ok(true)`) or a disconnect (`Ok(false)`).
///
/// A chunk that begins a new container ([`super::starts_container`]) after
/// media has reached the pipeline starts a new period, whatever the client
/// said: another publisher (a new `onair publish` with the same token), or a
/// recorder that restarted unannounced, brings a media clock that starts
/// again. `capture_start_ms` (this connection's) dates it; `marked` says a
/// period was just announced (its own marker counts).
async fn publish(
    conn: &mut Conn,
    hub: &Arc<IngestHub>,
    session: &Arc<Session>,
    next_seq: u64,
    capture_start_ms: i64,
    marked: bool,
    new_session: bool,
) -> Result<bool, Refusal> {
    let limits = hub.limits;
    conn.send(&ServerMessage::Ready {
        next_seq,
        new_session,
        limits: WireLimits {
            max_message_bytes: limits.max_message_bytes as u64,
            max_bitrate: limits.max_bitrate,
            idle_timeout_s: limits.idle_timeout.as_secs(),
        },
    })
    .await?;
    let mut outcome = session.outcome.clone();
    let mut rx = Receiver::new(limits.max_bitrate, marked, Instant::now());
    loop {
        let msg = tokio::select! {
            m = conn.recv(limits.idle_timeout) => m?,
            _ = outcome.changed() => {
                let failed = outcome.borrow().clone();
                return match failed {
                    Some(Err(e)) => Err((close::BAD_MEDIA, "bad_media", e)),
                    // A shutdown ended the pipeline: the stream is resumable.
                    _ if hub.stopping() => Err((
                        close::SERVICE_RESTART,
                        "server_restart",
                        "the server is restarting; the stream resumes when it is back".into(),
                    )),
                    _ => Ok(false),
                };
            }
        };
        let step = match &msg {
            None | Some(Message::Close(_)) => return Ok(false),
            Some(Message::Binary(frame)) => rx.binary(
                frame,
                session.next_seq.load(Ordering::SeqCst),
                session.received.load(Ordering::SeqCst),
                Instant::now(),
            )?,
            Some(Message::Text(t)) => rx.text(t, crate::clock::now_ms())?,
            Some(_) => Step::Nothing, // ping/pong are answered by the library
        };
        match step {
            Step::Nothing | Step::Duplicate => {}
            Step::Chunk {
                seq,
                next,
                data,
                new_period,
            } => {
                if new_period {
                    tracing::info!(stream = %session.stream_id, seq, "a new container: a new period");
                    start_period(session, capture_start_ms).await?;
                }
                let Some(tx) = session.sender() else {
                    return Err((
                        close::INTERNAL,
                        "internal",
                        "the stream has already ended".into(),
                    ));
                };
                session.received.store(true, Ordering::SeqCst);
                if tx
                    .send(Feed::Chunk(Bytes::copy_from_slice(data)))
                    .await
                    .is_err()
                {
                    // The pipeline drops its input as it fails and reports
                    // why a moment later: wait (bounded) for that reason.
                    let reason = tokio::time::timeout(
                        Duration::from_secs(2),
                        outcome.wait_for(Option::is_some),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|r| r.clone())
                    .unwrap_or_else(|| outcome.borrow().clone());
                    let message = match reason {
                        Some(Err(e)) => e,
                        _ => "the media pipeline stopped".into(),
                    };
                    return Err((close::BAD_MEDIA, "bad_media", message));
                }
                session.next_seq.store(next, Ordering::SeqCst);
                conn.send(&ServerMessage::Ack { seq }).await?;
            }
            Step::End => {
                session.close_input();
                session.attached.store(false, Ordering::SeqCst);
                // Wait (bounded) for the pipeline to flush the last segment.
                let failed = match tokio::time::timeout(
                    Duration::from_secs(30),
                    outcome.wait_for(|o| o.is_some()),
                )
                .await
                {
                    Ok(Ok(o)) => o.clone().and_then(|r| r.err()),
                    _ => None,
                };
                if let Some(e) = failed {
                    return Err((close::BAD_MEDIA, "bad_media", e));
                }
                hub.set_state(&session.stream_id, app::protocol::StreamState::Ended)
                    .await;
                conn.send(&ServerMessage::Ended).await?;
                conn.close(1000, "ended", "the stream has ended").await;
                return Ok(true);
            }
            Step::NewPeriod { capture_start_ms } => {
                tracing::info!(stream = %session.stream_id, "the publisher started a new period");
                start_period(session, capture_start_ms).await?;
            }
        }
    }
}
