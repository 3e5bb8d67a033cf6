//! Any node serves any stream (cluster mode): a node that does not own a
//! live stream acts as an edge for it and forwards its playlist and media
//! requests to the owner, the node that holds the stream's lease.
//!
//! - **The owner** is read from the stream's lease (its node id and base
//!   URL, `--node-url`), through [`Owners`]; each answer is kept
//!   [`OWNER_FRESH`], and dropped at once when the owner does not answer.
//! - **Collapsing**: requests for the same URI (its query included, so one
//!   blocking reload `_HLS_msn=M&_HLS_part=N` is one key) share one request
//!   to the owner ([`flights::Flights`]). Keys name the owner too, so media
//!   kept from a dead owner is never served for its successor's URLs.
//! - **Keeping**: parts, segments and init segments fetched from the owner
//!   are immutable; they are kept ([`cache::MediaCache`]) for
//!   `--edge-cache-secs` within `--edge-cache-bytes`. Playlists are only
//!   collapsed, never kept past their answer.
//! - The playback gate runs on this node before anything is forwarded
//!   (`http::playback`); the request to the owner carries a playback token
//!   this node signs (nodes share `--playback-key`), so private streams pass
//!   the owner's gate too.
//! - WHEP viewers are relayed (`crate::webrtc`'s relays): one upstream
//!   WebRTC session per stream, whose offer goes to the owner's WHEP
//!   endpoint through [`Forwarder::whep_offer`] with the same token and
//!   edge header.
//! - An owner that does not answer is [`ForwardError::OwnerUnreachable`]
//!   (502, counted in `onair_edge_owner_errors_total`), never a hang: each
//!   request to the owner has a deadline longer than the owner's own
//!   blocking wait.

pub mod cache;
pub mod flights;
pub mod whep;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::origin::Media;
use cache::MediaCache;
use flights::Flights;

/// How long a lease lookup's answer is used.
pub const OWNER_FRESH: Duration = Duration::from_secs(1);
/// The header a forwarded request carries: the forwarding node's id (the
/// owner counts these requests in `onair_edge_served_total`).
pub const EDGE_HEADER: &str = "x-onair-edge";
/// The largest answer read from an owner (a segment of a high-bitrate
/// rendition fits many times over).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// A stream's owner as its lease names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its node id.
    pub node: String,
    /// Its base URL (`http://host:port`); empty when it published none.
    pub url: String,
}

impl Owner {
    /// The owner did not answer as it should (`message` says how); counted
    /// in `onair_edge_owner_errors_total`.
    pub fn unreachable(&self, message: String) -> ForwardError {
        metrics::counter!("onair_edge_owner_errors_total").increment(1);
        ForwardError::OwnerUnreachable {
            owner: self.node.clone(),
            message,
        }
    }

    /// The owner's URL of `path` (which starts with `/`); refused when its
    /// lease names no URL.
    pub fn url_of(&self, path: &str) -> Result<String, ForwardError> {
        if self.url.is_empty() {
            return Err(self.unreachable("its lease names no URL".into()));
        }
        Ok(format!("{}{path}", self.url.trim_end_matches('/')))
    }
}

/// Where the leases are read (NATS in `server`; a fake in tests).
#[async_trait::async_trait]
pub trait Owners: Send + Sync + std::fmt::Debug {
    /// The stream's owner, if a node holds its lease; an error when nobody
    /// can say now.
    async fn owner(&self, stream: &str) -> Result<Option<Owner>, String>;
}

/// Why a forwarded request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// No node owns the stream (or this node does, and it is not live here).
    #[error("stream {0} is not live")]
    NotLive(String),
    /// The leases cannot be read now.
    #[error("cannot find the node that serves this stream: {0}")]
    OwnerUnknown(String),
    /// The owner did not answer.
    #[error("the node that serves this stream ({owner}) does not answer: {message}")]
    OwnerUnreachable {
        /// The owner's node id.
        owner: String,
        /// What went wrong.
        message: String,
    },
}

/// What the owner answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Immutable media (kept), with its validator.
    Media(Media),
    /// A playlist's text.
    Text(Bytes),
    /// A refusal (its status and JSON body), passed on as it is.
    Refused {
        /// The owner's status code.
        status: u16,
        /// The owner's body.
        body: Bytes,
    },
}

/// The settings of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    /// This node's id (never forwarded to itself).
    pub node_id: String,
    /// Bytes of media kept.
    pub cache_bytes: usize,
    /// How long media is kept.
    pub cache_ttl: Duration,
    /// The deadline of one request to the owner (longer than the owner's
    /// longest blocking wait).
    pub timeout: Duration,
}

/// What kind of request is forwarded (the metrics' `kind` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The master playlist.
    Master,
    /// A media playlist (blocking or not).
    Playlist,
    /// A part.
    Part,
    /// A segment.
    Segment,
    /// An init segment.
    Init,
    /// A caption playlist or segment.
    Captions,
}

impl Kind {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Playlist => "playlist",
            Kind::Part => "part",
            Kind::Segment => "segment",
            Kind::Init => "init",
            Kind::Captions => "captions",
        }
    }

    /// Whether its answer never changes (and is kept).
    pub fn immutable(self) -> bool {
        matches!(self, Kind::Part | Kind::Segment | Kind::Init)
    }
}

type Flight = Result<Fetched, ForwardError>;

/// Forwards requests for streams other nodes own (see the module's
/// documentation).
#[derive(Debug)]
pub struct Forwarder {
    config: ForwardConfig,
    owners: Arc<dyn Owners>,
    node_url: Arc<OnceLock<String>>,
    client: reqwest::Client,
    known: Mutex<HashMap<String, (Instant, Option<Owner>)>>,
    flights: Flights<Flight>,
    cache: Mutex<MediaCache>,
}

impl Forwarder {
    /// A forwarder reading owners from `owners`; `node_url` is this node's
    /// own URL as its leases carry it (set once known).
    pub fn new(
        config: ForwardConfig,
        owners: Arc<dyn Owners>,
        node_url: Arc<OnceLock<String>>,
    ) -> Arc<Forwarder> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Arc::new(Forwarder {
            cache: Mutex::new(MediaCache::new(config.cache_bytes, config.cache_ttl)),
            config,
            owners,
            node_url,
            client,
            known: Mutex::new(HashMap::new()),
            flights: Flights::new(),
        })
    }

    /// This node's URL for the others, unless one is set already.
    pub fn set_node_url(&self, url: String) {
        if self.node_url.set(url.clone()).is_ok() {
            tracing::info!(url, "this node's URL for the other nodes");
        }
    }

    /// This node's URL for the others, once known.
    pub fn node_url(&self) -> Option<String> {
        self.node_url.get().cloned()
    }

    /// The bytes of forwarded media held now.
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).bytes()
    }

    /// The stream's owner (another node), from the lease.
    async fn owner(&self, stream: &str) -> Result<Owner, ForwardError> {
        let now = Instant::now();
        let known = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(stream)
            .filter(|(at, _)| now.saturating_duration_since(*at) < OWNER_FRESH)
            .map(|(_, o)| o.clone());
        let owner = match known {
            Some(o) => o,
            None => {
                let o = self
                    .owners
                    .owner(stream)
                    .await
                    .map_err(ForwardError::OwnerUnknown)?;
                let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
                known.retain(|_, (at, _)| now.saturating_duration_since(*at) < OWNER_FRESH);
                known.insert(stream.to_string(), (now, o.clone()));
                o
            }
        };
        match owner {
            Some(o) if o.node != self.config.node_id => Ok(o),
            _ => Err(ForwardError::NotLive(stream.to_string())),
        }
    }

    /// Forgets the stream's owner (it did not answer: the next request
    /// reads the lease again).
    fn forget(&self, stream: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
    }

    /// `GET /live/{stream}/{path}?{query}` from the owner: kept media from
    /// memory, else one collapsed request per URI. `query` is the
    /// canonical LL-HLS query (no token); `token`, a playback token for the
    /// owner's gate.
    pub async fn get(
        self: &Arc<Self>,
        stream: &str,
        path: &str,
        query: &str,
        kind: Kind,
        token: Option<String>,
    ) -> Result<Fetched, ForwardError> {
        let uri = if query.is_empty() {
            format!("/live/{stream}/{path}")
        } else {
            format!("/live/{stream}/{path}?{query}")
        };
        let owner = self.owner(stream).await?;
        // Keyed on the owner too: a stream that moved to another node
        // (failover) may number from a sequence the dead owner had used.
        let key = format!("{} {uri}", owner.node);
        if kind.immutable() {
            let kept = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key, Instant::now());
            if let Some(media) = kept {
                metrics::counter!("onair_edge_cache_hits_total", "kind" => kind.label())
                    .increment(1);
                return Ok(Fetched::Media(media));
            }
        }
        let this = self.clone();
        let cache_key = key.clone();
        let (answer, led) = self
            .flights
            .run(&key, move || async move {
                this.fetch(&owner, &uri, &cache_key, kind, token).await
            })
            .await;
        if !led {
            metrics::counter!("onair_edge_collapsed_total", "kind" => kind.label()).increment(1);
        }
        if let Err(ForwardError::OwnerUnreachable { .. }) = &answer {
            self.forget(stream);
        }
        answer
    }

    /// One request to the owner for `uri`; immutable media is kept under
    /// `key`.
    async fn fetch(
        &self,
        owner: &Owner,
        uri: &str,
        key: &str,
        kind: Kind,
        token: Option<String>,
    ) -> Result<Fetched, ForwardError> {
        let unreachable = |message: String| owner.unreachable(message);
        let mut url = owner.url_of(uri)?;
        if let Some(t) = token {
            url.push(if uri.contains('?') { '&' } else { '?' });
            url.push_str("token=");
            url.push_str(&t);
        }
        metrics::counter!("onair_edge_upstream_requests_total", "kind" => kind.label())
            .increment(1);
        let res = self
            .client
            .get(&url)
            .header(EDGE_HEADER, self.config.node_id.as_str())
            .send()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        let status = res.status().as_u16();
        if res
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(unreachable(format!(
                "an answer over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        if body.len() > MAX_ANSWER_BYTES {
            return Err(unreachable(format!(
                "an answer over {MAX_ANSWER_BYTES} bytes"
            )));
        }
        if status != 200 {
            if status >= 500 && status != 503 {
                return Err(unreachable(format!("status {status}")));
            }
            return Ok(Fetched::Refused { status, body });
        }
        if kind.immutable() {
            let media = Media::new(body);
            self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(
                key,
                media.clone(),
                Instant::now(),
            );
            return Ok(Fetched::Media(media));
        }
        Ok(Fetched::Text(body))
    }
}

/// This node's default URL for the others: the bound address, with the
/// host name in place of an unspecified IP (`0.0.0.0`, `::`).
pub fn default_node_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = crate::cluster::default_node_id();
        return format!("http://{host}:{}", addr.port());
    }
    format!("http://{addr}")
}

#[cfg(test)]
mod tests;
