//! `--data-dir` and `--db`: where the data lives, shared by `serve` and `admin`.

use std::path::PathBuf;

use clap::Args;

use crate::db::{DbConfig, DbSettings};

use super::*;

/// Where the data lives: the data dir and the database. Shared by `serve` and
/// `admin`, so both open the same database from the same flags.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Directory for everything Onair keeps locally: the embedded database, the
    /// disk store, upload spill files and the generated playback secret.
    #[arg(long, env = "ONAIR_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database. Empty: the embedded SurrealDB (surrealkv engine) under
    /// `<data-dir>/db`. Otherwise `surrealkv:///abs/path`, `mem://` (nothing kept),
    /// or `ws://host:port` for a SurrealDB server.
    #[arg(long, env = "ONAIR_DB", default_value = "")]
    pub db: String,

    /// SurrealDB namespace.
    #[arg(long, env = "ONAIR_DB_NAMESPACE", default_value = "onair")]
    pub db_namespace: String,

    /// SurrealDB database name.
    #[arg(long, env = "ONAIR_DB_DATABASE", default_value = "onair")]
    pub db_database: String,

    /// Root user for a SurrealDB server (`ws://`); ignored for the embedded engine.
    #[arg(long, env = "ONAIR_DB_USER")]
    pub db_user: Option<String>,

    /// Password for `--db-user`. Prefer the environment variable to the flag.
    #[arg(long, env = "ONAIR_DB_PASSWORD", hide_env_values = true)]
    pub db_password: Option<String>,
}

impl DbArgs {
    /// Resolves `--db` and its companion options.
    pub fn db_settings(&self) -> Result<DbSettings, ConfigError> {
        let engine = DbConfig::parse(
            &self.db,
            &self.data_dir,
            self.db_user.clone(),
            self.db_password.clone(),
        )
        .map_err(|e| ConfigError::Db(e.0))?;
        Ok(DbSettings {
            engine,
            namespace: self.db_namespace.clone(),
            database: self.db_database.clone(),
        })
    }
}
