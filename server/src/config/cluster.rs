//! Cluster mode flags (`--nats-url`, `--node-id`, `--nats-*`, `--node-url`,
//! `--edge-cache-*`), resolved into
//! [`crate::cluster::ClusterConfig`]. Without `--nats-url` the node is alone
//! (the in-process bus).

use std::time::Duration;

use clap::Args;

use super::*;

/// Several nodes on NATS (see docs/deploy.md).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// NATS server(s) with JetStream, e.g. `nats://127.0.0.1:4222`
    /// (comma-separated). Empty: this node is alone (no NATS).
    #[arg(long, env = "ONAIR_NATS_URL", default_value = "")]
    pub nats_url: String,

    /// This node's name in the cluster (1 to 64 letters, digits, `-`, `_`).
    /// Empty: the host name.
    #[arg(long, env = "ONAIR_NODE_ID", default_value = "")]
    pub node_id: String,

    /// Events each room keeps on NATS for resumes on any node (JetStream
    /// max messages per subject, 16 to 100,000).
    #[arg(long, env = "ONAIR_NATS_ROOM_HISTORY", default_value_t = 512)]
    pub nats_room_history: i64,

    /// Seconds a room's events stay on NATS (JetStream max age, at least 60).
    #[arg(long, env = "ONAIR_NATS_ROOM_MAX_AGE", default_value_t = 3600)]
    pub nats_room_max_age: u64,

    /// Seconds a stream's ownership lease lives without renewal (2 to 60):
    /// a dead owner's streams are free after this. Renewed five times as often.
    #[arg(long, env = "ONAIR_NATS_LEASE_TTL", default_value_t = 5)]
    pub nats_lease_ttl: u64,

    /// This node's base URL for the other nodes (`http://host:port`): they
    /// forward the requests for streams this node owns there. Empty: the
    /// bound listen address (the host name for 0.0.0.0).
    #[arg(long, env = "ONAIR_NODE_URL", default_value = "")]
    pub node_url: String,

    /// Bytes of parts and segments a node keeps from the owners of the
    /// streams it forwards (1 MiB to 64 GiB).
    #[arg(long, env = "ONAIR_EDGE_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub edge_cache_bytes: u64,

    /// Seconds a forwarded part or segment is kept (1 to 3600; about the
    /// live window).
    #[arg(long, env = "ONAIR_EDGE_CACHE_SECS", default_value_t = 60)]
    pub edge_cache_secs: u64,
}

/// Whether `id` can name a node.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl ClusterArgs {
    /// The cluster settings.
    pub fn cluster_config(&self) -> Result<crate::cluster::ClusterConfig, ConfigError> {
        let url = self.nats_url.trim();
        let node_id = match self.node_id.trim() {
            "" => {
                let host: String = crate::cluster::default_node_id()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .take(64)
                    .collect();
                host
            }
            id if valid_node_id(id) => id.to_string(),
            id => {
                return Err(ConfigError::Cluster {
                    flag: "--node-id",
                    message: format!("{id:?} is not 1 to 64 letters, digits, '-' or '_'"),
                })
            }
        };
        if !(16..=100_000).contains(&self.nats_room_history) {
            return Err(ConfigError::Cluster {
                flag: "--nats-room-history",
                message: "must be 16 to 100,000 events".into(),
            });
        }
        if self.nats_room_max_age < 60 {
            return Err(ConfigError::Cluster {
                flag: "--nats-room-max-age",
                message: "must be at least 60 seconds".into(),
            });
        }
        if !(2..=60).contains(&self.nats_lease_ttl) {
            return Err(ConfigError::Cluster {
                flag: "--nats-lease-ttl",
                message: "must be 2 to 60 seconds".into(),
            });
        }
        let node_url = match self.node_url.trim().trim_end_matches('/') {
            "" => None,
            u => match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                    Some(u.to_string())
                }
                _ => {
                    return Err(ConfigError::Cluster {
                        flag: "--node-url",
                        message: format!("{u:?} is not an http(s) URL with a host"),
                    })
                }
            },
        };
        if !(1 << 20..=64 << 30).contains(&self.edge_cache_bytes) {
            return Err(ConfigError::Cluster {
                flag: "--edge-cache-bytes",
                message: "must be 1 MiB to 64 GiB".into(),
            });
        }
        if !(1..=3600).contains(&self.edge_cache_secs) {
            return Err(ConfigError::Cluster {
                flag: "--edge-cache-secs",
                message: "must be 1 to 3600 seconds".into(),
            });
        }
        Ok(crate::cluster::ClusterConfig {
            node_url,
            edge_cache_bytes: usize::try_from(self.edge_cache_bytes).unwrap_or(usize::MAX),
            edge_cache_ttl: Duration::from_secs(self.edge_cache_secs),
            nats_url: (!url.is_empty()).then(|| url.to_string()),
            node_id,
            room_history: self.nats_room_history,
            room_max_age: Duration::from_secs(self.nats_room_max_age),
            lease_ttl: Duration::from_secs(self.nats_lease_ttl),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command, ServeArgs};

    fn serve(args: &[&str]) -> ServeArgs {
        let mut full = vec!["onair", "serve"];
        full.extend_from_slice(args);
        match Cli::try_parse_from(full).expect("valid arguments").command {
            Command::Serve(args) => *args,
            _ => panic!("expected serve"),
        }
    }

    #[test]
    fn cluster_flags_resolve_and_refuse_unusable_values() {
        let alone = serve(&[]).cluster.cluster_config().expect("default");
        assert_eq!(alone.nats_url, None, "no --nats-url: one node");
        assert!(!alone.node_id.is_empty() && alone.node_id.len() <= 64);
        assert_eq!(alone.room_history, 512);
        assert_eq!(alone.lease_ttl.as_secs(), 5);
        assert_eq!(alone.node_url, None);
        assert_eq!(alone.edge_cache_bytes, 256 << 20);
        assert_eq!(alone.edge_cache_ttl.as_secs(), 60);

        let c = serve(&[
            "--nats-url",
            " nats://10.0.0.5:4222 ",
            "--node-id",
            "edge-1",
            "--nats-room-history",
            "1000",
            "--nats-lease-ttl",
            "10",
            "--node-url",
            "http://10.0.0.5:8080/",
            "--edge-cache-bytes",
            "1048576",
            "--edge-cache-secs",
            "30",
        ])
        .cluster
        .cluster_config()
        .expect("cluster");
        assert_eq!(c.nats_url.as_deref(), Some("nats://10.0.0.5:4222"));
        assert_eq!(c.node_id, "edge-1");
        assert_eq!(c.room_history, 1000);
        assert_eq!(c.lease_ttl.as_secs(), 10);
        assert_eq!(c.node_url.as_deref(), Some("http://10.0.0.5:8080"));
        assert_eq!(c.edge_cache_bytes, 1 << 20);
        assert_eq!(c.edge_cache_ttl.as_secs(), 30);

        for bad in [
            &["--node-id", "a.b"][..],
            &["--node-id", "node with spaces"],
            &["--nats-room-history", "0"],
            &["--nats-room-history", "100001"],
            &["--nats-room-max-age", "59"],
            &["--nats-lease-ttl", "1"],
            &["--nats-lease-ttl", "61"],
            &["--node-url", "10.0.0.5:8080"],
            &["--node-url", "ftp://x"],
            &["--edge-cache-bytes", "1000"],
            &["--edge-cache-secs", "0"],
        ] {
            let e = serve(bad).cluster.cluster_config().expect_err("refused");
            assert!(e.to_string().starts_with("--"), "{bad:?}: {e}");
        }
        let long = "n".repeat(65);
        assert!(serve(&["--node-id", &long])
            .cluster
            .cluster_config()
            .is_err());
    }
}
