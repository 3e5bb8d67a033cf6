//! Streams as the API and the pages see them, the rules their fields follow,
//! and the server functions that list them.

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::accounts::FieldError;
use crate::error::AppError;
use crate::protocol::StreamState;

/// Who may see and play a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed, and playable by anyone.
    Public,
    /// Not listed; anyone with the link can play it.
    Unlisted,
    /// Only the owner and admins see it; playback needs a signed token.
    Private,
}

impl Visibility {
    /// Every visibility.
    pub const ALL: [Visibility; 3] = [
        Visibility::Public,
        Visibility::Unlisted,
        Visibility::Private,
    ];

    /// The name stored in the database and sent in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The owner of a stream, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOwner {
    /// The user id.
    pub id: String,
    /// The username.
    pub username: String,
}

/// A stream as `/api/v1/streams` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// The stream id used in URLs.
    pub id: String,
    /// Who owns it.
    pub owner: StreamOwner,
    /// Title, 1 to 120 characters.
    pub title: String,
    /// Description, at most 2000 characters (may be empty).
    pub description: String,
    /// Who may see and play it.
    pub visibility: Visibility,
    /// Lifecycle state.
    pub state: StreamState,
    /// When it was created, RFC 3339 (UTC, seconds).
    pub created_at: String,
    /// When it first went live.
    pub started_at: Option<String>,
    /// When it last ended or was interrupted (cleared when it goes live again).
    pub ended_at: Option<String>,
    /// The secret the publisher presents. Only in the answers to creation and
    /// to `POST /api/v1/streams/{id}/token`, and only to the owner or an admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_token: Option<String>,
    /// Its recording's duration, thumbnail and MP4 state, in listings of
    /// streams that have one (profiles, the owner's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<crate::recordings::RecordingSummary>,
}

/// The body of `POST /api/v1/streams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    /// Title, 1 to 120 characters after trimming.
    pub title: String,
    /// Description, at most 2000 characters; empty when left out.
    #[serde(default)]
    pub description: Option<String>,
    /// Who may see and play it.
    pub visibility: Visibility,
}

/// The body of `PATCH /api/v1/streams/{id}`: every field is optional, and only
/// the fields present (and not `null`) change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamPatch {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New description (`""` clears it).
    #[serde(default)]
    pub description: Option<String>,
    /// New visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// The answer of `GET /api/v1/streams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamList {
    /// The streams, newest first (live streams: most recently started first).
    pub streams: Vec<Stream>,
}

/// The shortest and longest life of a private share link, seconds.
pub const SHARE_LINK_SECS: std::ops::RangeInclusive<u64> = 60..=30 * 24 * 3600;

/// The lives a share link can be given in the watch page's Share panel:
/// (seconds, label).
pub const SHARE_LINK_CHOICES: [(u64, &str); 4] = [
    (3600, "1 hour"),
    (24 * 3600, "1 day"),
    (7 * 24 * 3600, "7 days"),
    (30 * 24 * 3600, "30 days"),
];

/// The body of `POST /api/v1/streams/{id}/share`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// How long the link plays, seconds ([`SHARE_LINK_SECS`]).
    pub expires_in_secs: u64,
}

/// A link that plays a private stream (its live playlist, recording,
/// transcript and room) until it expires, for anyone who has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    /// `/watch/{id}?token=…`.
    pub path: String,
    /// `--public-url` (or the request's host) plus `path`.
    pub url: String,
    /// The signed playback token in it.
    pub token: String,
    /// When it stops working, RFC 3339 (UTC).
    pub expires_at: String,
}

/// Checks a share link's requested life.
pub fn validate_share(req: &ShareRequest) -> Result<u64, FieldError> {
    if SHARE_LINK_SECS.contains(&req.expires_in_secs) {
        Ok(req.expires_in_secs)
    } else {
        Err(FieldError::new(
            "expires_in_secs",
            format!(
                "a share link lasts {} to {} seconds (1 minute to 30 days)",
                SHARE_LINK_SECS.start(),
                SHARE_LINK_SECS.end()
            ),
        ))
    }
}

/// The answer of `GET /api/v1/streams/{id}/encoder`: how an encoder such as
/// OBS publishes to the stream (owner or admin only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// OBS's *Server*: `rtmp://HOST:PORT/live`; `None` when the server has
    /// no RTMP listener.
    pub rtmp_server: Option<String>,
    /// OBS's *Stream key*: `<stream id>_<key>`. It changes when a new ingest
    /// token is made.
    pub stream_key: String,
    /// The RTMP listener accepts only connections from the server's own
    /// machine (`--rtmp-addr` on a loopback address).
    pub loopback_only: bool,
    /// RTMP over TLS: `rtmps://HOST:PORT/live`; `None` when the server has
    /// no RTMPS listener (`--rtmps-addr`).
    #[serde(default)]
    pub rtmps_server: Option<String>,
    /// SRT: `srt://HOST:PORT?streamid=#!::r=<stream id>,m=publish`, with the
    /// stream key as the passphrase (the URL holds no secret); `None` when
    /// the server has no SRT listener (`--srt-addr`).
    #[serde(default)]
    pub srt_url: Option<String>,
    /// The SRT listener accepts only callers on the server's own machine.
    #[serde(default)]
    pub srt_loopback_only: bool,
    /// WHIP (WebRTC, OBS 30+): `http(s)://HOST/api/v1/streams/<id>/whip`,
    /// with the stream key as the bearer token; `None` when the server has
    /// no WHIP endpoint (`--webrtc-udp-addr`).
    #[serde(default)]
    pub whip_url: Option<String>,
}

/// Encoder settings that suit low latency and the ladder: a keyframe every
/// second, H.264 and AAC, and a bitrate for each resolution (kbit/s).
pub const RECOMMENDED_ENCODER: &[(&str, u32)] =
    &[("1080p30", 6000), ("720p30", 3000), ("480p30", 1500)];

/// The answer of `GET /api/v1/streams/{id}/watch`: what a player should load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchInfo {
    /// The stream id.
    pub stream_id: String,
    /// The stream's visibility.
    pub visibility: Visibility,
    /// The stream's state (only a `live` stream has a playlist to load).
    pub state: StreamState,
    /// The master playlist's path on this server (with the token for private streams).
    pub path: String,
    /// The master playlist's absolute URL.
    pub url: String,
    /// The playback token, for private streams.
    pub token: Option<String>,
    /// When the token expires, RFC 3339, for private streams.
    pub expires_at: Option<String>,
    /// The recording's VOD master playlist path (with the token for private
    /// streams), once the stream has ended and its recording is written.
    #[serde(default)]
    pub vod: Option<String>,
    /// This server transcribes live streams (an `--asr-url` is set): the
    /// player offers captions while live.
    #[serde(default)]
    pub captions: bool,
    /// The recording's WebVTT captions path (beside `vod`); it is missing
    /// when the stream was not transcribed.
    #[serde(default)]
    pub vod_captions: Option<String>,
    /// The recording's thumbnail as an absolute URL, for link previews
    /// (`og:image`): public and unlisted streams whose recording has one.
    #[serde(default)]
    pub thumbnail: Option<String>,
}

/// Titles: at most this many characters.
pub const TITLE_MAX_CHARS: usize = 120;
/// Descriptions: at most this many characters.
pub const DESCRIPTION_MAX_CHARS: usize = 2000;

/// Checks a title and returns it trimmed: 1 to 120 characters, no control characters.
pub fn validate_title(title: &str) -> Result<String, FieldError> {
    let t = title.trim();
    let n = t.chars().count();
    if n == 0 || n > TITLE_MAX_CHARS {
        return Err(FieldError::new(
            "title",
            format!("must be 1 to {TITLE_MAX_CHARS} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(
            "title",
            "must not contain control characters such as line breaks",
        ));
    }
    Ok(t.to_string())
}

/// Checks a description: at most 2000 characters (line breaks allowed).
pub fn validate_description(description: &str) -> Result<(), FieldError> {
    if description.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

/// A stream as listed on the home page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCard {
    /// The stream id used in URLs.
    pub id: String,
    /// The title the owner gave it.
    pub title: String,
    /// The owner's username.
    pub owner: String,
    /// Lifecycle state (`live` in the live list; `ended` or `interrupted` in
    /// the recent list).
    pub state: StreamState,
    /// When it went live, RFC 3339.
    pub started_at: Option<String>,
    /// When it last ended, RFC 3339.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// How many people watch it now. Reserved for the realtime viewer count
    /// (not built yet): always `None` until then, and the pages show nothing.
    #[serde(default)]
    pub viewers: Option<u32>,
}

/// Streams on the home page's "Recently live" list: at most this many.
pub const RECENT_STREAMS: usize = 12;

/// A broadcaster's profile as `GET /api/v1/users/{name}` returns it: the user
/// and their public streams, live ones first, then the rest by when they last
/// ended (most recent first), then streams that never went live (newest first).
/// Unlisted and private streams are never included, not even for the owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The broadcaster.
    pub user: StreamOwner,
    /// Their public streams (no `ingest_token`).
    pub streams: Vec<Stream>,
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn StreamsBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait StreamsBackend: Send + Sync + 'static {
    /// Public streams that are live now, most recently started first.
    fn live_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>>;
    /// Public streams that ended most recently, most recent first (at most
    /// [`RECENT_STREAMS`]).
    fn recent_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>>;
    /// A broadcaster's public streams; 404 `not_found` for an unknown user.
    fn profile(&self, name: String) -> BoxFuture<'_, Result<Profile, AppError>>;
    /// The signed-in user's streams, newest first.
    fn my_streams(&self, req: Parts) -> BoxFuture<'_, Result<Vec<Stream>, AppError>>;
    /// Creates a stream; the answer holds its ingest token.
    fn create_stream(&self, req: Parts, body: NewStream)
        -> BoxFuture<'_, Result<Stream, AppError>>;
    /// Changes a stream.
    fn update_stream(
        &self,
        req: Parts,
        id: String,
        patch: StreamPatch,
    ) -> BoxFuture<'_, Result<Stream, AppError>>;
    /// Deletes a stream.
    fn delete_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<(), AppError>>;
    /// A new ingest token for a stream.
    fn regenerate_ingest_token(
        &self,
        req: Parts,
        id: String,
    ) -> BoxFuture<'_, Result<Stream, AppError>>;
    /// What a player should load for a stream.
    fn watch(&self, req: Parts, id: String) -> BoxFuture<'_, Result<WatchInfo, AppError>>;
    /// How an encoder publishes to a stream (owner or admin).
    fn encoder(&self, req: Parts, id: String) -> BoxFuture<'_, Result<EncoderInfo, AppError>>;
    /// A share link for a private stream (owner or admin).
    fn share(
        &self,
        req: Parts,
        id: String,
        body: ShareRequest,
    ) -> BoxFuture<'_, Result<ShareLink, AppError>>;
    /// One stream, if the caller may see it.
    fn get_stream(&self, req: Parts, id: String) -> BoxFuture<'_, Result<Stream, AppError>>;
}

/// Lists the streams that are live now.
#[server(prefix = "/api/fn")]
pub async fn live_streams() -> Result<Vec<StreamCard>, AppError> {
    crate::serverfn::provided::<dyn StreamsBackend>()?
        .live_streams()
        .await
}

/// Public streams that ended most recently (at most [`RECENT_STREAMS`]).
#[server(prefix = "/api/fn")]
pub async fn recent_streams() -> Result<Vec<StreamCard>, AppError> {
    crate::serverfn::provided::<dyn StreamsBackend>()?
        .recent_streams()
        .await
}

/// A broadcaster's profile: their public streams. An unknown user is a
/// refusal with status 404 (`not_found`).
#[server(prefix = "/api/fn")]
pub async fn user_profile(name: String) -> Result<Profile, AppError> {
    use crate::serverfn::{provided, status};
    status(provided::<dyn StreamsBackend>()?.profile(name).await)
}

/// The signed-in user's streams (every visibility), newest first.
#[server(prefix = "/api/fn")]
pub async fn my_streams() -> Result<Vec<Stream>, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .my_streams(request()?)
            .await,
    )
}

/// Creates a stream; the answer holds its ingest token, shown only now.
#[server(prefix = "/api/fn")]
pub async fn create_stream(stream: NewStream) -> Result<Stream, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .create_stream(request()?, stream)
            .await,
    )
}

/// Changes a stream's title, description or visibility.
#[server(prefix = "/api/fn")]
pub async fn update_stream(id: String, patch: StreamPatch) -> Result<Stream, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .update_stream(request()?, id, patch)
            .await,
    )
}

/// Deletes a stream that is not live.
#[server(prefix = "/api/fn")]
pub async fn delete_stream(id: String) -> Result<(), AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .delete_stream(request()?, id)
            .await,
    )
}

/// A new ingest token; the old one stops working for new connections.
#[server(prefix = "/api/fn")]
pub async fn regenerate_ingest_token(id: String) -> Result<Stream, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .regenerate_ingest_token(request()?, id)
            .await,
    )
}

/// One stream (title, description, owner, state), if the caller may see it.
#[server(prefix = "/api/fn")]
pub async fn get_stream(id: String) -> Result<Stream, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .get_stream(request()?, id)
            .await,
    )
}

/// A share link for a private stream that lasts `expires_in_secs` (owner or admin).
#[server(prefix = "/api/fn")]
pub async fn create_share_link(id: String, expires_in_secs: u64) -> Result<ShareLink, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .share(request()?, id, ShareRequest { expires_in_secs })
            .await,
    )
}

/// How an encoder (OBS) publishes to this stream: server URL and key.
#[server(prefix = "/api/fn")]
pub async fn encoder_settings(id: String) -> Result<EncoderInfo, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .encoder(request()?, id)
            .await,
    )
}

/// What a player should load (with a playback token for private streams).
#[server(prefix = "/api/fn")]
pub async fn watch_stream(id: String) -> Result<WatchInfo, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn StreamsBackend>()?
            .watch(request()?, id)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_descriptions_follow_the_rules() {
        assert_eq!(validate_title("  Hello  ").as_deref(), Ok("Hello"));
        assert_eq!(
            validate_title(&"é".repeat(120)).map(|t| t.chars().count()),
            Ok(120)
        );
        for bad in ["", "   ", "two\nlines", &"x".repeat(121)] {
            assert_eq!(validate_title(bad).expect_err(bad).field, "title");
        }
        assert!(validate_description(&"x".repeat(2000)).is_ok());
        assert!(validate_description(&"x".repeat(2001)).is_err());
    }

    #[test]
    fn stream_json_hides_the_token_unless_set() {
        let s = Stream {
            id: "s1".into(),
            owner: StreamOwner {
                id: "u1".into(),
                username: "alice".into(),
            },
            title: "T".into(),
            description: String::new(),
            visibility: Visibility::Unlisted,
            state: StreamState::Idle,
            created_at: "2026-11-21T08:00:00Z".into(),
            started_at: None,
            ended_at: None,
            ingest_token: None,
            recording: None,
        };
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["visibility"], "unlisted");
        assert_eq!(json["state"], "idle");
        assert!(json.get("ingest_token").is_none());
        for v in Visibility::ALL {
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
        }
        for v in StreamState::ALL {
            assert_eq!(StreamState::parse(v.as_str()), Some(v));
        }
        let patch: StreamPatch = serde_json::from_str(r#"{"title":"x"}"#).expect("patch");
        assert_eq!(patch.visibility, None);
        assert!(serde_json::from_str::<StreamPatch>(r#"{"state":"live"}"#).is_err());
    }
}
