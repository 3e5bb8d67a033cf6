//! The database layer, embedded (surrealkv on disk) and against a real
//! SurrealDB server over WebSocket.

use onair_server::config::{DbConfig, DbSettings};
use onair_server::db::{Database, DbError};

use crate::support::{SurrealServer, SURREAL_PASSWORD};

/// Inserts a user and two streams, one live, straight through SurrealQL.
async fn seed(db: &Database) {
    db.client()
        .query(
            "CREATE user:alice SET username = 'alice', password_hash = 'x', role = 'broadcaster';
             CREATE stream:s1 SET owner = user:alice, title = 'Morning show', state = 'live',
                 ingest_token_hash = 'h', started_at = d'2026-11-21T08:00:00Z';
             CREATE stream:s2 SET owner = user:alice, title = 'Not live', ingest_token_hash = 'h';",
        )
        .await
        .expect("seed query")
        .check()
        .expect("seed ok");
}

async fn assert_schema_and_queries(db: &Database) {
    let first = db.migrate().await.expect("migrate");
    assert_eq!(first.applied, vec![1]);
    assert_eq!(first.current, 1);
    let again = db.migrate().await.expect("migrate again");
    assert!(
        again.applied.is_empty(),
        "migrations are re-runnable: {again:?}"
    );

    seed(db).await;
    let live = db.live_streams(10).await.expect("live streams");
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].id, "s1");
    assert_eq!(live[0].title, "Morning show");
    assert_eq!(live[0].owner, "alice");
    assert_eq!(live[0].started_at.as_deref(), Some("2026-11-21T08:00:00Z"));

    // The schema is enforced: a bad state and a duplicate username are refused.
    let bad = db
        .client()
        .query("CREATE stream SET owner = user:alice, title = 't', state = 'exploded', ingest_token_hash = 'h'")
        .await
        .expect("query sent")
        .check();
    assert!(bad.is_err(), "an unknown state must be refused");
    let dup = db
        .client()
        .query("CREATE user SET username = 'alice', password_hash = 'y', role = 'viewer'")
        .await
        .expect("query sent")
        .check();
    assert!(dup.is_err(), "usernames are unique");
    db.check().await.expect("ready");
}

#[tokio::test]
async fn embedded_database_migrates_queries_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let db = Database::open_embedded(&path).await.expect("open");
        assert!(db.describe().contains("surrealkv"), "{}", db.describe());
        assert_schema_and_queries(&db).await;
    }
    // Reopen the same files: the data and the schema version are still there.
    let mut reopened = None;
    for _ in 0..50 {
        match Database::open_embedded(&path).await {
            Ok(db) => {
                reopened = Some(db);
                break;
            }
            // The previous handle releases its file lock in the background.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let db = reopened.expect("reopen the embedded database");
    assert!(db.migrate().await.expect("migrate").applied.is_empty());
    assert_eq!(db.live_streams(10).await.expect("live").len(), 1);
}

#[tokio::test]
async fn surrealdb_server_over_websocket() {
    let server = SurrealServer::start();
    let settings = |password: &str| DbSettings {
        engine: DbConfig::Remote {
            url: server.url.clone(),
            user: Some("root".into()),
            password: Some(password.into()),
        },
        namespace: "onair".into(),
        database: "test".into(),
    };
    let db = Database::connect(&settings(SURREAL_PASSWORD))
        .await
        .expect("connect");
    assert_eq!(db.describe(), format!("server {}", server.url));
    assert_schema_and_queries(&db).await;

    // A second connection sees the same data: this is the shared state scale-out relies on.
    let other = Database::connect(&settings(SURREAL_PASSWORD))
        .await
        .expect("second connection");
    assert_eq!(other.live_streams(10).await.expect("live").len(), 1);

    let wrong = Database::connect(&settings("wrong-password")).await;
    assert!(matches!(wrong, Err(DbError::Auth { .. })), "{wrong:?}");
}
