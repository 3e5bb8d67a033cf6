//! The database: a SurrealDB handle that is either the embedded engine (surrealkv
//! on disk, or in memory) or a SurrealDB server over WebSocket, chosen by one
//! config value. [`Database::connect`] opens it and [`Database::migrate`] brings
//! the schema up to date.

pub mod chapters;
pub mod chat;
pub mod migrations;
pub mod recordings;
pub mod search;
pub mod settings;
pub mod streams;
pub mod summaries;
pub mod transcripts;
pub mod users;

pub use settings::{DbConfig, DbSettings, DbUrlError};

use std::path::Path;
use std::sync::Arc;

use surrealdb::engine::any::Any;
use surrealdb::opt::auth::Root;
use surrealdb::Surreal;

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database could not be opened or reached.
    #[error("could not open the database {target}: {source}")]
    Connect {
        /// Which database (path or URL, never credentials).
        target: String,
        /// What SurrealDB said.
        source: surrealdb::Error,
    },
    /// The embedded database directory could not be created.
    #[error("could not create the database directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Signing in to a SurrealDB server failed.
    #[error("signing in to the database server as {user:?} failed: {source}")]
    Auth {
        /// The user name.
        user: String,
        /// What the server said.
        source: surrealdb::Error,
    },
    /// A schema migration failed; the database is left at the previous version.
    #[error("schema migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version number.
        version: i64,
        /// Its name.
        name: &'static str,
        /// What SurrealDB said.
        source: surrealdb::Error,
    },
    /// Another node held the schema migration lock for longer than this
    /// node waits ([`migrations::LOCK_WAIT`]).
    #[error("gave up after {waited_secs} s waiting for {holder} to finish migrating the schema (its lock is `migration_lock:schema`)")]
    MigrationLock {
        /// Who holds the lock.
        holder: String,
        /// How long this node waited.
        waited_secs: u64,
    },
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] surrealdb::Error),
    /// The OS random number generator failed.
    #[error("could not generate a random token: {0}")]
    Random(String),
    /// A unique value (such as a username) is already taken.
    #[error("{0} is already taken")]
    Duplicate(String),
    /// A Unix time (ms) outside what RFC 3339 can write.
    #[error("{0} ms is not a time the database can store")]
    Time(i64),
    /// A write succeeded but returned nothing.
    #[error("the database returned no row for {0}")]
    Missing(String),
}

/// What the OS says when storage refuses a write for lack of room (Linux
/// and macOS texts, with the errno that goes with each): no space, the
/// disk quota, the file size limit.
const STORAGE_FULL: [&str; 6] = [
    "No space left on device",
    "os error 28",
    "Disk quota exceeded",
    "os error 122",
    "File too large",
    "os error 27",
];

impl DbError {
    /// The database (embedded, or a server) refused a write because its
    /// storage is full. SurrealDB passes the OS error on as text, so this is
    /// the one place that reads it.
    pub fn is_storage_full(&self) -> bool {
        let text = self.to_string();
        STORAGE_FULL.iter().any(|m| text.contains(m))
    }
}

/// A connected, migrated database handle. Cheap to clone: clones share one
/// client session.
///
/// The `Surreal` handle sits behind an `Arc` on purpose: cloning a `Surreal`
/// opens a new session on the server and replays the sign-in on it (a
/// password check on a SurrealDB server), and dropping it detaches. The
/// state is cloned into every request and every router layer, so without the
/// `Arc` a `ws://` database was kept busy with session churn.
#[derive(Debug, Clone)]
pub struct Database {
    db: Arc<Surreal<Any>>,
    target: String,
}

impl Database {
    /// Opens the database the settings name and selects its namespace and database.
    pub async fn connect(settings: &DbSettings) -> Result<Self, DbError> {
        let (url, target) = match &settings.engine {
            DbConfig::Embedded(path) => {
                crate::private_fs::create_dir(path).map_err(|source| DbError::Dir {
                    path: path.display().to_string(),
                    source,
                })?;
                let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                (
                    format!("surrealkv://{}", abs.display()),
                    format!("embedded surrealkv at {}", abs.display()),
                )
            }
            DbConfig::Memory => ("mem://".to_string(), "embedded in-memory".to_string()),
            DbConfig::Remote { url, .. } => (url.clone(), format!("server {url}")),
        };
        let db = surrealdb::engine::any::connect(url.as_str())
            .await
            .map_err(|source| DbError::Connect {
                target: target.clone(),
                source,
            })?;
        if let DbConfig::Remote {
            user: Some(user),
            password,
            ..
        } = &settings.engine
        {
            db.signin(Root {
                username: user.clone(),
                password: password.clone().unwrap_or_default(),
            })
            .await
            .map_err(|source| DbError::Auth {
                user: user.clone(),
                source,
            })?;
        }
        db.use_ns(settings.namespace.as_str())
            .use_db(settings.database.as_str())
            .await
            .map_err(|source| DbError::Connect {
                target: target.clone(),
                source,
            })?;
        Ok(Database {
            db: Arc::new(db),
            target,
        })
    }

    /// Opens an embedded on-disk database at `path` (a convenience for tools and tests).
    pub async fn open_embedded(path: &Path) -> Result<Self, DbError> {
        Database::connect(&DbSettings {
            engine: DbConfig::Embedded(path.to_path_buf()),
            namespace: "onair".into(),
            database: "onair".into(),
        })
        .await
    }

    /// Where the data lives, for logs (never includes credentials).
    pub fn describe(&self) -> &str {
        &self.target
    }

    /// The SurrealDB client, for the typed queries in this module's children.
    pub fn client(&self) -> &Surreal<Any> {
        &self.db
    }

    /// Applies every migration not applied yet; see [`migrations`]. Safe to
    /// run on several nodes at once: one migrates, the others wait for it.
    pub async fn migrate(&self) -> Result<migrations::Report, DbError> {
        self.migrate_as("onair").await
    }

    /// [`Database::migrate`], naming this node (`who`) in the migration
    /// lock and the logs.
    pub async fn migrate_as(&self, who: &str) -> Result<migrations::Report, DbError> {
        migrations::apply(&self.db, migrations::MIGRATIONS, who).await
    }

    /// Checks that the database answers a query, for `/readyz`.
    pub async fn check(&self) -> Result<(), DbError> {
        self.db.query("RETURN 1").await?.check()?;
        Ok(())
    }
}

/// A migrated in-memory database with `fixtures` (SurrealQL) applied, for
/// the query modules' unit tests.
#[cfg(test)]
pub(crate) async fn test_database(fixtures: &str) -> Database {
    let db = Database::connect(&DbSettings {
        engine: DbConfig::Memory,
        namespace: "onair".into(),
        database: "test".into(),
    })
    .await
    .expect("memory database");
    db.migrate().await.expect("migrations");
    db.client()
        .query(fixtures)
        .await
        .expect("query")
        .check()
        .expect("fixtures");
    db
}
