//! Integration tests, in one binary so the large dependency graph links once.
//! Each test starts the real servers it needs (SeaweedFS for S3, the SurrealDB
//! server, Onair itself) on 127.0.0.1 and stops them when it ends.

mod accounts;
mod analytics;
mod bundle;
mod captions;
mod chapters;
mod cluster;
mod connections;
mod db;
mod edge;
mod edge_kit;
mod events;
mod failover;
mod forward;
mod http;
mod ingest;
mod llhls;
mod lossy;
mod nats_outage;
mod outage;
mod profiles;
mod publish;
mod recording;
mod relay;
mod rtmp;
mod security;
mod shutdown;
mod srt;
mod store;
mod support;
mod transcripts;
mod whep;
mod whip;
