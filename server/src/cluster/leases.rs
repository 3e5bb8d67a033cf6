//! Stream leases on NATS (cluster mode): a JetStream key-value bucket,
//! [`LEASES_BUCKET`], whose entries live [`super::ClusterConfig::lease_ttl`].
//! The node that accepts a stream's ingest creates the stream's key
//! (create-only: a second node is refused), renews it five times per time
//! to live while the pipeline runs, and deletes it when the pipeline stops.
//! A dead owner's key lapses within the time to live.

use std::sync::Arc;
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
    kv: Arc<OnceCell<kv::Store>>,
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
    ) -> NatsLeases {
        NatsLeases {
            js,
            client,
            node,
            ttl,
            kv: Arc::new(OnceCell::new()),
        }
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
    async fn holder(&self, stream: &str) -> Result<Option<(String, u64)>, LeaseError> {
        let kv = self.store().await?;
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.entry(stream)).await {
            Ok(Ok(Some(e))) if e.operation == kv::Operation::Put => Ok(Some((
                String::from_utf8_lossy(&e.value).into_owned(),
                e.revision,
            ))),
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
        let created = tokio::time::timeout(
            REQUEST_TIMEOUT,
            kv.create(stream, Bytes::from(self.node.clone())),
        )
        .await
        .map_err(|_| LeaseError::Unavailable("no answer".into()))?;
        let revision = match created {
            Ok(rev) => rev,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.holder(stream).await? {
                    Some((node, rev)) if node == self.node => rev,
                    Some((node, _)) => return Err(LeaseError::Taken(node)),
                    // Gone between the two calls: try once more.
                    None => kv
                        .create(stream, Bytes::from(self.node.clone()))
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
        let value = Bytes::from(leases.node.clone());
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.update(&stream, value.clone(), revision))
            .await
        {
            Ok(Ok(rev)) => revision = rev,
            _ => match leases.holder(&stream).await {
                Ok(Some((node, rev))) if node == leases.node => revision = rev,
                Ok(None) => match kv.create(&stream, value).await {
                    Ok(rev) => {
                        tracing::info!(stream, "stream lease taken again after it lapsed");
                        revision = rev
                    }
                    Err(e) => tracing::warn!(stream, error = %e, "cannot renew the stream lease"),
                },
                Ok(Some((node, _))) => {
                    tracing::error!(stream, owner = %node, "the stream's lease lapsed and another node took it");
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
            if let Ok(Some((node, rev))) = leases.holder(&stream).await {
                if node == leases.node {
                    if let Ok(kv) = leases.store().await {
                        let _ = kv.delete_expect_revision(&stream, Some(rev)).await;
                    }
                }
            }
        });
    }
}
