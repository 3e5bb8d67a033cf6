//! The database layer, embedded (surrealkv on disk) and against a real
//! SurrealDB server over WebSocket.

use std::time::Duration;

use onair_server::db::users::Upserted;
use onair_server::db::{migrations, Database, DbError};
use onair_server::db::{DbConfig, DbSettings};

use crate::support::{remote_db, SurrealServer, TestApp, SURREAL_PASSWORD};

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
    assert_eq!(first.applied, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(first.current, 8);
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
    // Private and unlisted live streams are not on the home page.
    db.client()
        .query("CREATE stream:s3 SET owner = user:alice, title = 'Secret', state = 'live', visibility = 'private', ingest_token_hash = 'h'")
        .await
        .expect("seed")
        .check()
        .expect("seed ok");
    assert_eq!(db.live_streams(10).await.expect("live").len(), 1);

    assert_users_and_sessions(db).await;
}

/// Users and sessions through the typed queries; the duplicate-username
/// detection reads SurrealDB's error, so it runs on both engines.
async fn assert_users_and_sessions(db: &Database) {
    let carol = db
        .create_user("carol", "$argon2id$fake", "viewer")
        .await
        .expect("create carol");
    assert_eq!(carol.username, "carol");
    assert_eq!(carol.role, "viewer");
    let dup = db.create_user("carol", "$argon2id$other", "admin").await;
    assert!(matches!(dup, Err(DbError::Duplicate(_))), "{dup:?}");
    let found = db
        .user_by_username("carol")
        .await
        .expect("lookup")
        .expect("carol exists");
    assert_eq!(found.id, carol.id);
    assert_eq!(found.password_hash, "$argon2id$fake");
    assert!(
        !format!("{found:?}").contains("fake"),
        "hash kept out of Debug"
    );

    db.create_session("hash-a", &carol.id, Duration::from_secs(3600))
        .await
        .expect("session a");
    db.create_session("hash-b", &carol.id, Duration::from_secs(1))
        .await
        .expect("session b");
    assert_eq!(
        db.session_user("hash-a").await.expect("a"),
        Some(carol.clone())
    );
    assert_eq!(db.session_user("nope").await.expect("none"), None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(db.session_user("hash-b").await.expect("b"), None, "expired");
    db.purge_expired_sessions(&carol.id).await.expect("purge");

    // The CLI's upsert: a new password and role end the user's sessions.
    match db
        .upsert_user("carol", "$argon2id$new", "admin")
        .await
        .expect("upsert")
    {
        Upserted::Updated(u, ended) => {
            assert_eq!(u.role, "admin");
            assert_eq!(ended, 1, "only the unexpired session was left");
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(db.session_user("hash-a").await.expect("a"), None);
    assert!(matches!(
        db.upsert_user("dave", "$argon2id$d", "broadcaster").await,
        Ok(Upserted::Created(_))
    ));
    db.delete_session("hash-a")
        .await
        .expect("deleting twice is fine");
}

#[tokio::test]
async fn migration_2_trims_long_titles_and_descriptions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open_embedded(&dir.path().join("db"))
        .await
        .expect("open");
    migrations::apply(db.client(), &migrations::MIGRATIONS[..1], "test")
        .await
        .expect("migration 1");
    db.client()
        .query(format!(
            "CREATE user:alice SET username = 'alice', password_hash = 'x', role = 'broadcaster';
             CREATE stream:long SET owner = user:alice, title = '{}', ingest_token_hash = 'h';",
            "t".repeat(150)
        ))
        .await
        .expect("seed")
        .check()
        .expect("seed ok");
    assert_eq!(
        db.migrate().await.expect("migrate").applied,
        vec![2, 3, 4, 5, 6, 7, 8]
    );
    let row = db.get_stream("long").await.expect("get").expect("row");
    assert_eq!(row.title.chars().count(), 120);
    // The new limit holds from now on.
    let too_long = db
        .client()
        .query(format!(
            "UPDATE stream:long SET title = '{}'",
            "t".repeat(121)
        ))
        .await
        .expect("sent")
        .check();
    assert!(too_long.is_err());
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

/// Several nodes started at the same moment against one fresh SurrealDB
/// server (systemd or an orchestrator starting them all, or all coming back
/// after an outage): every one comes up and answers `/readyz`, and the
/// schema is at the current version once: one `migration` row per version,
/// every table and index defined, and the migration lock released.
#[tokio::test]
async fn several_nodes_start_together_on_a_fresh_server() {
    let server = SurrealServer::start();
    let start = |name: &'static str| {
        let db = remote_db(&server.url, SURREAL_PASSWORD);
        TestApp::start(move |c| {
            c.db = db;
            c.cluster.node_id = name.into();
        })
    };
    let (a, b, c) = tokio::join!(start("node-a"), start("node-b"), start("node-c"));
    for app in [&a, &b, &c] {
        let ready = app
            .http
            .get(app.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200, "{}", app.addr);
    }

    let db = Database::connect(&remote_db(&server.url, SURREAL_PASSWORD))
        .await
        .expect("connect");
    let mut versions: Vec<i64> = db
        .client()
        .query("SELECT VALUE version FROM migration")
        .await
        .expect("query")
        .check()
        .expect("versions")
        .take(0)
        .expect("take");
    versions.sort_unstable();
    let all: Vec<i64> = migrations::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(versions, all, "one row per migration, none twice");
    let locks: Vec<String> = db
        .client()
        .query("SELECT VALUE holder FROM migration_lock")
        .await
        .expect("query")
        .check()
        .expect("locks")
        .take(0)
        .expect("take");
    assert!(locks.is_empty(), "the lock is released: {locks:?}");
    let mut indexes: Vec<String> = db
        .client()
        .query("RETURN object::keys((INFO FOR TABLE stream).indexes)")
        .await
        .expect("query")
        .check()
        .expect("info")
        .take(0)
        .expect("take");
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        [
            "stream_description_text",
            "stream_owner",
            "stream_state",
            "stream_title_text",
            "stream_visibility_state"
        ]
    );
    // The schema works: a second migrate is a no-op and queries run.
    assert!(db.migrate().await.expect("migrate").applied.is_empty());
    seed(&db).await;
    assert_eq!(db.live_streams(10).await.expect("live").len(), 1);
}
