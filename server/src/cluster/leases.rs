//! Stream leases on NATS (cluster mode): a JetStream key-value bucket,
//! [`LEASES_BUCKET`], whose entries live [`super::ClusterConfig::lease_ttl`].
//! The node that accepts a stream's ingest creates the stream's key
//! (create-only: a second node is refused), renews it five times per time
//! to live while the pipeline runs, and deletes it when the pipeline stops.
//! A dead owner's key lapses within the time to live.
//!
//! A lease's value names its holder: `{"node":"<node id>","url":"<base
//! URL>"}`, the URL other nodes forward the stream's playlist and media
//! requests to (`--node-url`; see `crate::forward`). A bare node id (no
//! URL) is read as a holder that cannot be forwarded to.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use tokio::sync::OnceCell;

use super::nats::{AbortOnDrop, REQUEST_TIMEOUT};

/// The key-value bucket of stream leases.
pub const LEASES_BUCKET: &str = "onair_leases";

/// Why a lease could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// Another node holds it.
    #[error("node {0} owns this stream")]
    Taken(String),
    /// NATS cannot say.
    #[error("stream leases are unavailable: {0}")]
    Unavailable(String),
}

/// Stream leases in a JetStream key-value bucket (see the module's
/// documentation).
#[derive(Debug, Clone)]
pub struct NatsLeases {
    js: jetstream::Context,
    client: async_nats::Client,
    node: String,
    ttl: Duration,
    /// This node's base URL for other nodes, once known (`--node-url`, or
    /// the bound listen address).
    url: Arc<OnceLock<String>>,
    kv: Arc<OnceCell<kv::Store>>,
}

/// Who holds a stream's lease.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    /// The node's id.
    pub node: String,
    /// The node's base URL for other nodes (empty: unknown).
    #[serde(default)]
    pub url: String,
}

impl Holder {
    /// Reads a lease's value: the JSON object, or a bare node id.
    pub fn parse(value: &[u8]) -> Holder {
        serde_json::from_slice(value).unwrap_or_else(|_| Holder {
            node: String::from_utf8_lossy(value).into_owned(),
            url: String::new(),
        })
    }

    fn value(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// A held lease: renewed until [`NatsLease::release`] (or until dropped,
/// when it simply expires).
#[derive(Debug)]
pub struct NatsLease {
    stream: String,
    _renew: AbortOnDrop,
    leases: NatsLeases,
}

impl NatsLeases {
    /// Leases over a NATS connection, held in this node's name.
    pub fn new(
        js: jetstream::Context,
        client: async_nats::Client,
        node: String,
        ttl: Duration,
        url: Arc<OnceLock<String>>,
    ) -> NatsLeases {
        NatsLeases {
            js,
            client,
            node,
            ttl,
            url,
            kv: Arc::new(OnceCell::new()),
        }
    }

    /// This node's lease value (its id and URL as known now).
    fn value(&self) -> Bytes {
        Holder {
            node: self.node.clone(),
            url: self.url.get().cloned().unwrap_or_default(),
        }
        .value()
    }

    /// This node's id, as its leases name it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Who holds the stream's lease now, if anyone.
    pub async fn owner(&self, stream: &str) -> Result<Option<Holder>, LeaseError> {
        if !app::ids::valid_stream_id(stream) {
            return Ok(None);
        }
        Ok(self.holder(stream).await?.map(|(h, _)| h))
    }

    async fn store(&self) -> Result<&kv::Store, LeaseError> {
        let unavailable = |e: String| LeaseError::Unavailable(e);
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err(unavailable("not connected to NATS".into()));
        }
        self.kv
            .get_or_try_init(|| async {
                // The bucket's stream is made here rather than with
                // `create_key_value`, which asks for the account's API
                // level, an answer Debian's nats-server 2.9 does not give.
                let got = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let config = stream::Config {
                        name: format!("KV_{LEASES_BUCKET}"),
                        subjects: vec![format!("$KV.{LEASES_BUCKET}.>")],
                        max_messages_per_subject: 1,
                        max_age: self.ttl,
                        storage: stream::StorageType::File,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: stream::DiscardPolicy::New,
                        num_replicas: 1,
                        ..Default::default()
                    };
                    self.js
                        .get_or_create_stream(config)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.js
                        .get_key_value(LEASES_BUCKET)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await;
                match got {
                    Ok(r) => r.map_err(unavailable),
                    Err(_) => Err(unavailable("no answer".into())),
                }
            })
            .await
    }

    /// Who holds the stream's lease now, and its revision.
    async fn holder(&self, stream: &str) -> Result<Option<(Holder, u64)>, LeaseError> {
        let kv = self.store().await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.entry(stream)).await {
            Ok(Ok(Some(e))) if e.operation == kv::Operation::Put => {
                Ok(Some((Holder::parse(&e.value), e.revision)))
            }
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) => Err(LeaseError::Unavailable(e.to_string())),
            Err(_) => Err(LeaseError::Unavailable("no answer".into())),
        }
    }

    /// Takes the stream's lease for this node (create-only), or finds it is
    /// this node's already.
    pub async fn claim(&self, stream: &str) -> Result<NatsLease, LeaseError> {
        if !app::ids::valid_stream_id(stream) {
            return Err(LeaseError::Unavailable(format!(
                "not a stream id: {stream:?}"
            )));
        }
        let kv = self.store().await?;
        let created = tokio::time::timeout(REQUEST_TIMEOUT, kv.create(stream, self.value()))
            .await
            .map_err(|_| LeaseError::Unavailable("no answer".into()))?;
        let revision = match created {
            Ok(rev) => rev,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.holder(stream).await? {
                    Some((h, rev)) if h.node == self.node => rev,
                    Some((h, _)) => return Err(LeaseError::Taken(h.node)),
                    // Gone between the two calls: try once more.
                    None => kv
                        .create(stream, self.value())
                        .await
                        .map_err(|e| LeaseError::Unavailable(e.to_string()))?,
                }
            }
            Err(e) => return Err(LeaseError::Unavailable(e.to_string())),
        };
        let renew = tokio::spawn(renew(self.clone(), stream.to_string(), revision));
        Ok(NatsLease {
            stream: stream.to_string(),
            _renew: AbortOnDrop(renew.abort_handle()),
            leases: self.clone(),
        })
    }
}

/// Renews a lease five times per time to live while it is held.
async fn renew(leases: NatsLeases, stream: String, mut revision: u64) {
    let every = (leases.ttl / 5).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let Ok(kv) = leases.store().await else {
            continue;
        };
        let value = leases.value();
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.update(&stream, value.clone(), revision))
            .await
        {
            Ok(Ok(rev)) => revision = rev,
            _ => match leases.holder(&stream).await {
                Ok(Some((h, rev))) if h.node == leases.node => revision = rev,
                Ok(None) => match kv.create(&stream, value).await {
                    Ok(rev) => {
                        tracing::info!(stream, "stream lease taken again after it lapsed");
                        revision = rev
                    }
                    Err(e) => tracing::warn!(stream, error = %e, "cannot renew the stream lease"),
                },
                Ok(Some((h, _))) => {
                    tracing::error!(stream, owner = %h.node, "the stream's lease lapsed and another node took it");
                    return;
                }
                Err(e) => tracing::warn!(stream, error = %e, "cannot renew the stream lease"),
            },
        }
    }
}

impl NatsLease {
    /// Gives the lease back (the pipeline stopped): another node may take
    /// the stream at once.
    pub fn release(self) {
        let NatsLease {
            stream,
            _renew,
            leases,
        } = self;
        drop(_renew);
        tokio::spawn(async move {
            if let Ok(Some((h, rev))) = leases.holder(&stream).await {
                if h.node == leases.node {
                    if let Ok(kv) = leases.store().await {
                        let _ = kv.delete_expect_revision(&stream, Some(rev)).await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_values_name_the_node_and_its_url() {
        let h = Holder {
            node: "node-a".into(),
            url: "http://10.0.0.1:8080".into(),
        };
        assert_eq!(Holder::parse(&h.value()), h);
        // A bare id (an older node's value): no URL to forward to.
        assert_eq!(
            Holder::parse(b"node-b"),
            Holder {
                node: "node-b".into(),
                url: String::new()
            }
        );
    }
}
