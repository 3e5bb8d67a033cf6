//! Stream operations and who may do them.
//!
//! | | anonymous | other user | owner | admin |
//! |---|---|---|---|---|
//! | read, watch a public or unlisted stream | yes | yes | yes | yes |
//! | read, watch a private stream | 404 | 404 | yes | yes |
//! | change, delete, new token | 401 | 403 (404 if private) | yes | yes |
//! | create | 401 | broadcasters and admins; viewers 403 | | |
//!
//! Private streams answer 404 to everyone but the owner and admins, so their
//! existence does not leak.

use app::accounts::FieldError;
use app::protocol::StreamState;
use app::streams::{
    validate_description, validate_title, NewStream, Stream, StreamList, StreamOwner, StreamPatch,
    Visibility, WatchInfo,
};
use serde::Deserialize;

use super::{RequestInfo, SessionUser};
use crate::auth::playback::unix_now;
use crate::auth::Accounts;
use crate::db::streams::{StreamChanges, StreamFilter, StreamRow};
use crate::db::{Database, DbError};

/// Most streams one list answer holds.
pub const MAX_LIMIT: i64 = 100;
/// Streams in a list answer when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// The largest `offset`.
pub const MAX_OFFSET: i64 = 100_000;

/// Why a stream operation fails. Mapped to HTTP statuses at the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No session, and the operation needs one.
    #[error("sign in first")]
    Unauthenticated,
    /// No such stream, or a private one the caller may not see.
    #[error("no stream {0}")]
    NotFound(String),
    /// No user with this name (profiles).
    #[error("no user {0}")]
    UserNotFound(String),
    /// The caller may see the stream but not change it.
    #[error("only the owner or an admin may change this stream")]
    NotOwner,
    /// The caller's role may not create streams.
    #[error("viewers cannot create streams; ask an admin for the broadcaster role")]
    CannotBroadcast,
    /// A live stream cannot be deleted.
    #[error("the stream is live; end the broadcast before deleting it")]
    Live,
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// A query parameter is malformed.
    #[error("{0}")]
    BadQuery(String),
    /// The store (or another service) failed.
    #[error("{0}")]
    Unavailable(String),
    /// The database failed.
    #[error(transparent)]
    Db(Box<DbError>),
}

impl From<DbError> for StreamError {
    fn from(e: DbError) -> Self {
        StreamError::Db(Box::new(e))
    }
}

/// The API form of a database row.
pub fn stream_from_row(row: StreamRow, ingest_token: Option<String>) -> Stream {
    Stream {
        visibility: Visibility::parse(&row.visibility).unwrap_or(Visibility::Private),
        state: StreamState::parse(&row.state).unwrap_or(StreamState::Idle),
        id: row.id,
        owner: StreamOwner {
            id: row.owner_id,
            username: row.owner_username.unwrap_or_default(),
        },
        title: row.title,
        description: row.description,
        created_at: row.created_at,
        started_at: row.started_at,
        ended_at: row.ended_at,
        ingest_token,
        recording: None,
    }
}

fn can_manage(user: &SessionUser, row: &StreamRow) -> bool {
    crate::auth::owner_or_admin(&user.user.id, user.user.role.as_str(), &row.owner_id)
}

/// Whether the session `token` belongs to the stream's owner or an admin
/// (the WebSocket caps count their sockets apart). An unknown session or
/// stream does not.
pub async fn session_manages(db: &Database, stream_id: &str, token: &str) -> Result<bool, DbError> {
    let session_hash = crate::auth::session_hash(token);
    let Some(row) = db.session_user(&session_hash).await? else {
        return Ok(false);
    };
    let Some(stream) = db.get_stream(stream_id).await? else {
        return Ok(false);
    };
    let user = SessionUser {
        user: super::user_from_row(row),
        session_hash,
    };
    Ok(can_manage(&user, &stream))
}

fn is_private(row: &StreamRow) -> bool {
    // Anything not known to be public or unlisted is treated as private.
    !matches!(
        Visibility::parse(&row.visibility),
        Some(Visibility::Public | Visibility::Unlisted)
    )
}

fn signed_in(user: Option<&SessionUser>) -> Result<&SessionUser, StreamError> {
    user.ok_or(StreamError::Unauthenticated)
}

/// The stream if `user` may see it; `NotFound` otherwise.
pub(crate) async fn load_visible(
    db: &Database,
    id: &str,
    user: Option<&SessionUser>,
) -> Result<StreamRow, StreamError> {
    let row = db
        .get_stream(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    if is_private(&row) && !user.is_some_and(|u| can_manage(u, &row)) {
        return Err(StreamError::NotFound(id.into()));
    }
    Ok(row)
}

/// The stream if `user` may change it.
pub(crate) async fn load_managed<'u>(
    db: &Database,
    id: &str,
    user: Option<&'u SessionUser>,
) -> Result<(StreamRow, &'u SessionUser), StreamError> {
    let user = signed_in(user)?;
    let row = load_visible(db, id, Some(user)).await?;
    if !can_manage(user, &row) {
        return Err(StreamError::NotOwner);
    }
    Ok((row, user))
}

/// Creates a stream; the answer holds its ingest token (the only time but one).
pub async fn create(
    db: &Database,
    user: Option<&SessionUser>,
    body: NewStream,
) -> Result<Stream, StreamError> {
    let user = signed_in(user)?;
    if !user.user.role.can_broadcast() {
        return Err(StreamError::CannotBroadcast);
    }
    let title = validate_title(&body.title)?;
    let description = body.description.unwrap_or_default();
    validate_description(&description)?;
    let (row, token) = db
        .create_stream_with(
            &user.user.id,
            &title,
            &description,
            body.visibility.as_str(),
        )
        .await?;
    tracing::info!(stream = %row.id, owner = %user.user.id, visibility = %row.visibility, "stream created");
    Ok(stream_from_row(row, Some(token)))
}

/// One stream, if the user may see it.
pub async fn read(
    db: &Database,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<Stream, StreamError> {
    let row = load_visible(db, id, user).await?;
    Ok(stream_from_row(row, None))
}

/// The query of a stream list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ListParams {
    /// `idle`, `live`, `ended` or `interrupted`.
    pub state: Option<String>,
    /// The caller's own streams (every visibility) instead of public ones.
    pub mine: Option<bool>,
    /// 1 to [`MAX_LIMIT`].
    pub limit: Option<i64>,
    /// 0 to [`MAX_OFFSET`].
    pub offset: Option<i64>,
}

/// Public streams, or the caller's own with `mine`.
pub async fn list(
    db: &Database,
    user: Option<&SessionUser>,
    q: ListParams,
) -> Result<StreamList, StreamError> {
    let wanted_state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(StreamState::parse(s).ok_or_else(|| {
            StreamError::BadQuery(format!(
                "state={s}: expected idle, live, ended or interrupted"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(StreamError::BadQuery(format!(
            "limit={limit}: expected 1 to {MAX_LIMIT}"
        )));
    }
    let offset = q.offset.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(StreamError::BadQuery(format!(
            "offset={offset}: expected 0 to {MAX_OFFSET}"
        )));
    }
    let mut filter = StreamFilter {
        state: wanted_state.map(StreamState::as_str),
        limit,
        offset,
        ..Default::default()
    };
    if q.mine == Some(true) {
        filter.owner = Some(&signed_in(user)?.user.id);
    } else {
        filter.visibility = Some(Visibility::Public.as_str());
    }
    let rows = db.list_streams(filter).await?;
    Ok(StreamList {
        streams: rows.into_iter().map(|r| stream_from_row(r, None)).collect(),
    })
}

/// Changes title, description or visibility. A stream that turns private
/// drops the viewers in its room (`rooms`, on this node) that may not watch
/// it any more.
pub async fn update(
    db: &Database,
    accounts: &Accounts,
    rooms: Option<&crate::realtime::Rooms>,
    user: Option<&SessionUser>,
    id: &str,
    patch: StreamPatch,
) -> Result<Stream, StreamError> {
    let (_, user) = load_managed(db, id, user).await?;
    let title = patch.title.as_deref().map(validate_title).transpose()?;
    if let Some(d) = &patch.description {
        validate_description(d)?;
    }
    let changes = StreamChanges {
        title,
        description: patch.description,
        visibility: patch.visibility.map(|v| v.as_str().to_string()),
    };
    let visibility_changed = changes.visibility.is_some();
    let row = db
        .update_stream(id, changes)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    if visibility_changed {
        // This node stops serving the old visibility at once; others within
        // the cache lifetime (5 s).
        accounts.visibility.invalidate(id);
        // Through the rooms: on every node where the room is open.
        if let Some(rooms) = rooms {
            rooms.set_private(id, is_private(&row));
        }
    }
    tracing::info!(stream = %id, by = %user.user.id, "stream updated");
    Ok(stream_from_row(row, None))
}

/// Deletes a stream that is not live, and its recording (store objects
/// first, so a store failure leaves the stream to delete again).
pub async fn delete(
    db: &Database,
    accounts: &Accounts,
    recorder: Option<&crate::recording::Recorder>,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<(), StreamError> {
    let (row, user) = load_managed(db, id, user).await?;
    if row.state == StreamState::Live.as_str() {
        return Err(StreamError::Live);
    }
    if let Some(recorder) = recorder {
        recorder.delete(id).await.map_err(|e| {
            StreamError::Unavailable(format!("could not delete the recording: {e}"))
        })?;
    }
    // Its transcript and summary go with it.
    db.delete_transcript(id).await?;
    db.delete_stream(id).await?;
    accounts.visibility.invalidate(id);
    tracing::info!(stream = %id, by = %user.user.id, "stream deleted");
    Ok(())
}

/// A new ingest token; the old one stops working for new ingest connections.
pub async fn regenerate_token(
    db: &Database,
    user: Option<&SessionUser>,
    id: &str,
) -> Result<Stream, StreamError> {
    let (_, user) = load_managed(db, id, user).await?;
    let token = db
        .regenerate_ingest_token(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    let row = db
        .get_stream(id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    tracing::info!(stream = %id, by = %user.user.id, "ingest token regenerated");
    Ok(stream_from_row(row, Some(token)))
}

/// The master playlist to load, with a playback token for private streams.
/// How an encoder publishes to a stream: the RTMP, RTMPS, SRT and WHIP URLs
/// (host from `--public-url` or the request, ports from the listeners) and
/// the stream key derived from the current ingest token. Owner or admin.
pub async fn encoder(
    db: &Database,
    accounts: &Accounts,
    user: Option<&SessionUser>,
    id: &str,
    info: &RequestInfo,
    listeners: &EncoderListeners,
) -> Result<app::streams::EncoderInfo, StreamError> {
    let (row, _) = load_managed(db, id, user).await?;
    let hash = db
        .ingest_token_hash(&row.id)
        .await?
        .ok_or_else(|| StreamError::NotFound(id.into()))?;
    let key = accounts.playback.stream_key(&row.id, &hash);
    let base = info.base_url(accounts);
    let host = url::Url::parse(&base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".into());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let EncoderListeners {
        rtmp,
        rtmps,
        srt,
        whip,
    } = *listeners;
    Ok(app::streams::EncoderInfo {
        rtmp_server: rtmp.map(|a| format!("rtmp://{host}:{}/live", a.port())),
        stream_key: format!("{}_{key}", row.id),
        loopback_only: rtmp.is_some_and(|a| a.ip().is_loopback()),
        rtmps_server: rtmps.map(|a| format!("rtmps://{host}:{}/live", a.port())),
        srt_url: srt.map(|a| {
            format!(
                "srt://{host}:{}?streamid=#!::r={},m=publish",
                a.port(),
                row.id
            )
        }),
        srt_loopback_only: srt.is_some_and(|a| a.ip().is_loopback()),
        whip_url: whip.map(|_| format!("{base}/api/v1/streams/{}/whip", row.id)),
    })
}

/// Unix seconds as RFC 3339 (UTC), if representable.
fn rfc3339(unix_secs: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix_secs).ok()?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A link that plays a private stream for `req.expires_in_secs` (owner or
/// admin; a public or unlisted stream's link needs no token, so it gets the
/// plain watch link).
pub async fn share(
    db: &Database,
    accounts: &Accounts,
    user: Option<&SessionUser>,
    id: &str,
    info: &RequestInfo,
    req: &app::streams::ShareRequest,
) -> Result<app::streams::ShareLink, StreamError> {
    let secs = app::streams::validate_share(req)?;
    let (row, _) = load_managed(db, id, user).await?;
    let (token, exp) =
        accounts
            .playback
            .issue(&row.id, std::time::Duration::from_secs(secs), unix_now());
    let expires_at = rfc3339(exp).unwrap_or_default();
    let path = if is_private(&row) {
        format!("/watch/{}?token={token}", row.id)
    } else {
        format!("/watch/{}", row.id)
    };
    Ok(app::streams::ShareLink {
        url: format!("{}{path}", info.base_url(accounts)),
        path,
        token,
        expires_at,
    })
}

/// A live stream's measured input and the warnings it earns (owner or
/// admin). A stream with no live session here answers `live: false`.
pub async fn health(
    db: &Database,
    user: Option<&SessionUser>,
    id: &str,
    ingest: Option<&crate::ingest::IngestHub>,
) -> Result<app::health::StreamHealth, StreamError> {
    let (row, _) = load_managed(db, id, user).await?;
    let Some((hub, session)) = ingest.and_then(|h| Some((h, h.session(&row.id)?))) else {
        return Ok(app::health::StreamHealth::default());
    };
    let mut health = session.health().snapshot();
    health.warnings = app::health::warnings(&health, hub.limits.max_bitrate);
    Ok(health)
}

/// Where this node's encoder listeners are bound (`None`: off).
#[derive(Debug, Clone, Copy, Default)]
pub struct EncoderListeners {
    /// `--rtmp-addr`.
    pub rtmp: Option<std::net::SocketAddr>,
    /// `--rtmps-addr`.
    pub rtmps: Option<std::net::SocketAddr>,
    /// `--srt-addr`.
    pub srt: Option<std::net::SocketAddr>,
    /// `--webrtc-udp-addr` (WHIP).
    pub whip: Option<std::net::SocketAddr>,
}

impl EncoderListeners {
    /// The listeners `hub` has bound.
    pub fn of(hub: &crate::ingest::IngestHub) -> Self {
        EncoderListeners {
            rtmp: hub.rtmp_addr.get().copied(),
            rtmps: hub.rtmps_addr.get().copied(),
            srt: hub.srt_addr.get().copied(),
            whip: hub.whip_addr.get().copied(),
        }
    }
}

pub async fn watch(
    db: &Database,
    accounts: &Accounts,
    user: Option<&SessionUser>,
    id: &str,
    info: &RequestInfo,
    captions: bool,
) -> Result<WatchInfo, StreamError> {
    let row = load_visible(db, id, user).await?;
    let visibility = Visibility::parse(&row.visibility).unwrap_or(Visibility::Private);
    let (path, token, expires_at) = if is_private(&row) {
        let (token, exp) = accounts
            .playback
            .issue(&row.id, accounts.playback_ttl, unix_now());
        let expires_at = rfc3339(exp);
        (
            format!("/live/{}/t/{token}/master.m3u8", row.id),
            Some(token),
            expires_at,
        )
    } else {
        (format!("/live/{}/master.m3u8", row.id), None, None)
    };
    let url = format!("{}{path}", info.base_url(accounts));
    let mut thumbnail = None;
    let (vod, vod_captions) = match db.get_recording(&row.id).await {
        Ok(Some(rec)) => {
            if rec.thumbnail && !is_private(&row) {
                thumbnail = Some(format!(
                    "{}/vod/{}/thumbnail.jpg",
                    info.base_url(accounts),
                    row.id
                ));
            }
            let prefix = super::recordings::vod_prefix(accounts, &row.id, visibility);
            // The recording lists captions when the stream has a transcript.
            let captions = db.has_transcript(&row.id).await.unwrap_or(false);
            (
                Some(format!("{prefix}/master.m3u8")),
                captions.then(|| format!("{prefix}/subs/captions.vtt")),
            )
        }
        Ok(None) => (None, None),
        Err(e) => {
            tracing::warn!(stream = %row.id, error = %e, "cannot look up the recording");
            (None, None)
        }
    };
    Ok(WatchInfo {
        vod,
        vod_captions,
        thumbnail,
        captions,
        stream_id: row.id,
        visibility,
        state: StreamState::parse(&row.state).unwrap_or(StreamState::Idle),
        path,
        url,
        token,
        expires_at,
    })
}
