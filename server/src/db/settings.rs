//! Where the database lives: the engine and its location, namespace and
//! database name ([`DbSettings`]), resolved from a `--db` value.

use std::path::{Path, PathBuf};

/// Where the database lives, resolved from `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbConfig {
    /// The embedded engine on disk (surrealkv) at this path.
    Embedded(PathBuf),
    /// The embedded in-memory engine: nothing survives a restart.
    Memory,
    /// A SurrealDB server.
    Remote {
        /// `ws://host:port` or `wss://host:port`.
        url: String,
        /// Root user, if the server requires one.
        user: Option<String>,
        /// Root password.
        password: Option<String>,
    },
}

/// Database settings: engine plus namespace and database name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSettings {
    /// The engine and its location.
    pub engine: DbConfig,
    /// SurrealDB namespace.
    pub namespace: String,
    /// SurrealDB database.
    pub database: String,
}

/// A `--db` value Onair does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected empty, mem://, surrealkv:///path or ws://host:port")]
pub struct DbUrlError(pub String);

impl DbConfig {
    /// Resolves a `--db` value: empty is the embedded engine under
    /// `<data_dir>/db`; `mem://`, `surrealkv:///path`, `ws://` or `wss://`.
    pub fn parse(
        raw: &str,
        data_dir: &Path,
        user: Option<String>,
        password: Option<String>,
    ) -> Result<DbConfig, DbUrlError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(DbConfig::Embedded(data_dir.join("db")));
        }
        if raw == "mem://" || raw == "memory" {
            return Ok(DbConfig::Memory);
        }
        if let Some(path) = raw.strip_prefix("surrealkv://") {
            if path.is_empty() {
                return Err(DbUrlError(raw.into()));
            }
            return Ok(DbConfig::Embedded(PathBuf::from(path)));
        }
        if raw.starts_with("ws://") || raw.starts_with("wss://") {
            return Ok(DbConfig::Remote {
                url: raw.to_string(),
                user,
                password,
            });
        }
        Err(DbUrlError(raw.into()))
    }
}
