//! Unit tests of the migrations and their lease (a sibling file, so the
//! module stays short).

use super::*;
use crate::db::{Database, DbConfig, DbSettings};

async fn fresh() -> Database {
    Database::connect(&DbSettings {
        engine: DbConfig::Memory,
        namespace: "onair".into(),
        database: "locks".into(),
    })
    .await
    .expect("memory database")
}

async fn lock(db: &Database, holder: &str, expires: &str) {
    db.client()
        .query(format!(
            "CREATE migration_lock:schema SET holder = $holder, expires_at = time::now() {expires}"
        ))
        .bind(("holder", holder.to_string()))
        .await
        .expect("query")
        .check()
        .expect("lock");
}

async fn holders(db: &Database) -> Vec<String> {
    db.client()
        .query("SELECT VALUE holder FROM migration_lock")
        .await
        .expect("query")
        .check()
        .expect("holders")
        .take(0)
        .expect("take")
}

fn versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_released() {
    let db = fresh().await;
    lock(&db, "a node that died", "- 1m").await;
    let report = apply(db.client(), MIGRATIONS, "node-b")
        .await
        .expect("migrate");
    assert_eq!(report.applied, versions());
    assert!(holders(&db).await.is_empty());
}

#[tokio::test]
async fn a_waiting_node_sees_the_holders_migrations_and_does_not_redo_them() {
    let db = fresh().await;
    lock(&db, "node-a", "+ 1h").await;
    let waiter = {
        let db = db.clone();
        tokio::spawn(async move { apply(db.client(), MIGRATIONS, "node-b").await })
    };
    // node-a migrates while it holds the lease.
    assert_eq!(
        apply_pending(db.client(), MIGRATIONS)
            .await
            .expect("node-a"),
        versions()
    );
    let report = waiter.await.expect("join").expect("node-b");
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.current, 8);
    assert_eq!(
        holders(&db).await,
        ["node-a"],
        "the holder's lease is its own"
    );
}

#[tokio::test]
async fn a_lease_that_never_frees_ends_the_wait_with_an_error() {
    let db = fresh().await;
    lock(&db, "node-a", "+ 1h").await;
    let waited = apply_waiting(db.client(), MIGRATIONS, "node-b", Duration::ZERO).await;
    match waited {
        Err(DbError::MigrationLock { holder, .. }) => assert_eq!(holder, "node-a"),
        other => panic!("expected MigrationLock, got {other:?}"),
    }
    // Nothing was migrated by the node that gave up.
    assert!(recorded(db.client()).await.expect("versions").is_empty());
}
