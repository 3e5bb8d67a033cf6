//! Versioned schema migrations. Each migration runs once, in a transaction
//! together with the row that records it in the `migration` table, so running
//! [`apply`] again is a no-op and a failed migration leaves no half-applied schema.
//! Add new migrations at the end of [`MIGRATIONS`]; never edit an applied one.
//!
//! Several nodes may start at once against one SurrealDB server (systemd or
//! an orchestrator starting them all, or all coming back after an outage).
//! Migrations are therefore applied under a lease in the database itself:
//! one record, `migration_lock:schema`, that a node claims with a `CREATE`
//! (which fails when the record exists, so exactly one node wins). The
//! winner renews it every [`LOCK_RENEW`] while it migrates and deletes it
//! when done; the others poll until every migration is recorded (done by
//! the winner) and go on without migrating. A holder that dies leaves a
//! lease that expires after [`LOCK_TTL`] (the database's clock), and the
//! next node deletes it and takes over. A node that waits longer than
//! [`LOCK_WAIT`] gives up with [`DbError::MigrationLock`] (the server exits).
//! A lock rather than idempotent steps: a migration's statements (such as
//! migration 2's `UPDATE`s) are not all safe to run twice concurrently, and
//! SurrealDB answers concurrent schema writes with "Transaction write
//! conflict" rather than treating the loser's as done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use surrealdb::engine::any::Any;
use surrealdb::types::SurrealValue;
use surrealdb::Surreal;

use super::DbError;

/// How long a claimed migration lease lasts without renewal (SurrealQL duration).
const LOCK_TTL_QL: &str = "30s";
/// How long a claimed migration lease lasts without renewal (30 s, the
/// database-side duration it is written with).
pub const LOCK_TTL: Duration = Duration::from_secs(30);
/// How often the holder renews its lease while it migrates.
pub const LOCK_RENEW: Duration = Duration::from_secs(10);
/// How long a node waits for another node's migrations before it gives up.
pub const LOCK_WAIT: Duration = Duration::from_secs(600);
/// How often a waiting node looks again.
const LOCK_POLL: Duration = Duration::from_millis(250);
/// Claims that fail while no lease exists (another error) before giving up.
const CLAIM_ATTEMPTS: u32 = 5;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Strictly increasing version number.
    pub version: i64,
    /// A short name for logs.
    pub name: &'static str,
    /// SurrealQL statements.
    pub sql: &'static str,
    /// Run in one transaction with its bookkeeping row (all or nothing).
    /// SurrealDB cannot build a full-text index over existing rows inside a
    /// transaction, so such a migration runs without one: its statements are
    /// idempotent (`IF NOT EXISTS`) and it is recorded after they all succeed.
    pub transactional: bool,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Versions applied by this call, in order.
    pub applied: Vec<i64>,
    /// The schema version after the call.
    pub current: i64,
}

/// The bookkeeping table itself; safe to run every time.
const BOOKKEEPING: &str = "
DEFINE TABLE IF NOT EXISTS migration SCHEMAFULL;
DEFINE FIELD IF NOT EXISTS version ON migration TYPE int;
DEFINE FIELD IF NOT EXISTS name ON migration TYPE string;
DEFINE FIELD IF NOT EXISTS applied_at ON migration TYPE datetime DEFAULT time::now();
DEFINE INDEX IF NOT EXISTS migration_version ON migration FIELDS version UNIQUE;
";

/// Every migration, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "users and streams",
        sql: "
DEFINE TABLE user SCHEMAFULL;
DEFINE FIELD username ON user TYPE string ASSERT string::len($value) >= 3 AND string::len($value) <= 32;
DEFINE FIELD password_hash ON user TYPE string;
DEFINE FIELD role ON user TYPE string ASSERT $value IN ['admin', 'broadcaster', 'viewer'];
DEFINE FIELD created_at ON user TYPE datetime DEFAULT time::now();
DEFINE INDEX user_username ON user FIELDS username UNIQUE;

DEFINE TABLE stream SCHEMAFULL;
DEFINE FIELD owner ON stream TYPE record<user>;
DEFINE FIELD title ON stream TYPE string ASSERT string::len($value) >= 1 AND string::len($value) <= 200;
DEFINE FIELD description ON stream TYPE string DEFAULT '';
DEFINE FIELD visibility ON stream TYPE string DEFAULT 'public' ASSERT $value IN ['public', 'unlisted', 'private'];
DEFINE FIELD state ON stream TYPE string DEFAULT 'idle' ASSERT $value IN ['idle', 'live', 'ended', 'interrupted'];
DEFINE FIELD ingest_token_hash ON stream TYPE string;
DEFINE FIELD created_at ON stream TYPE datetime DEFAULT time::now();
DEFINE FIELD started_at ON stream TYPE option<datetime>;
DEFINE FIELD ended_at ON stream TYPE option<datetime>;
DEFINE INDEX stream_state ON stream FIELDS state;
DEFINE INDEX stream_owner ON stream FIELDS owner;
",
        transactional: true,
    },
    Migration {
        version: 2,
        name: "accounts: sessions, stream field limits",
        sql: "
-- Sessions: the record key is the SHA-256 (hex) of the cookie value, so the
-- database never holds a usable session id.
DEFINE TABLE session SCHEMAFULL;
DEFINE FIELD user ON session TYPE record<user>;
DEFINE FIELD created_at ON session TYPE datetime DEFAULT time::now();
DEFINE FIELD expires_at ON session TYPE datetime;
DEFINE INDEX session_user ON session FIELDS user;
DEFINE INDEX session_expires ON session FIELDS expires_at;

-- The API limits titles to 120 characters and descriptions to 2000.
UPDATE stream SET title = string::slice(title, 0, 120) WHERE string::len(title) > 120;
UPDATE stream SET description = string::slice(description, 0, 2000) WHERE string::len(description) > 2000;
DEFINE FIELD OVERWRITE title ON stream TYPE string ASSERT string::len($value) >= 1 AND string::len($value) <= 120;
DEFINE FIELD OVERWRITE description ON stream TYPE string DEFAULT '' ASSERT string::len($value) <= 2000;
DEFINE INDEX stream_visibility_state ON stream FIELDS visibility, state;
",
        transactional: true,
    },
    Migration {
        version: 3,
        name: "chat: messages, bans, moderation log, room settings",
        sql: "
DEFINE TABLE chat_message SCHEMAFULL;
DEFINE FIELD stream ON chat_message TYPE record<stream>;
DEFINE FIELD author ON chat_message TYPE record<user>;
DEFINE FIELD username ON chat_message TYPE string;
DEFINE FIELD text ON chat_message TYPE string ASSERT string::len($value) <= 2000;
DEFINE FIELD at ON chat_message TYPE int;
DEFINE FIELD deleted_by ON chat_message TYPE option<record<user>>;
DEFINE FIELD deleted_at ON chat_message TYPE option<datetime>;
DEFINE INDEX chat_message_stream_at ON chat_message FIELDS stream, at;

-- One row per (stream, user): a ban (until NONE) or a timeout (until, Unix ms).
DEFINE TABLE chat_ban SCHEMAFULL;
DEFINE FIELD stream ON chat_ban TYPE record<stream>;
DEFINE FIELD user ON chat_ban TYPE record<user>;
DEFINE FIELD until ON chat_ban TYPE option<int>;
DEFINE FIELD by ON chat_ban TYPE record<user>;
DEFINE FIELD at ON chat_ban TYPE datetime DEFAULT time::now();
DEFINE INDEX chat_ban_stream ON chat_ban FIELDS stream;

-- Who did what to whom, and when.
DEFINE TABLE moderation_log SCHEMAFULL;
DEFINE FIELD stream ON moderation_log TYPE record<stream>;
DEFINE FIELD actor ON moderation_log TYPE record<user>;
DEFINE FIELD action ON moderation_log TYPE string;
DEFINE FIELD target ON moderation_log TYPE option<record<user>>;
DEFINE FIELD detail ON moderation_log TYPE string DEFAULT '';
DEFINE FIELD at ON moderation_log TYPE datetime DEFAULT time::now();
DEFINE INDEX moderation_log_stream_at ON moderation_log FIELDS stream, at;

DEFINE FIELD chat_slow_mode_secs ON stream TYPE int DEFAULT 0;
DEFINE FIELD chat_block_links ON stream TYPE bool DEFAULT false;
DEFINE FIELD chat_banned_words ON stream TYPE array<string> DEFAULT [];
DEFINE FIELD moderators ON stream TYPE array<record<user>> DEFAULT [];
",
        transactional: true,
    },
    Migration {
        version: 4,
        name: "recordings: segment and rendition catalog, recording state",
        sql: "
-- Every archived segment, written as the pipeline produces it: the VOD
-- playlists are built from these rows and the store's listing.
DEFINE TABLE segment SCHEMAFULL;
DEFINE FIELD stream ON segment TYPE string;
DEFINE FIELD rendition ON segment TYPE string;
DEFINE FIELD msn ON segment TYPE int;
DEFINE FIELD duration ON segment TYPE int;
DEFINE FIELD timescale ON segment TYPE int;
DEFINE FIELD pdt_ms ON segment TYPE option<int>;
DEFINE FIELD discontinuity ON segment TYPE bool;
DEFINE FIELD init ON segment TYPE string;
DEFINE FIELD size ON segment TYPE int;
DEFINE INDEX segment_stream ON segment FIELDS stream, rendition, msn;

DEFINE TABLE rendition SCHEMAFULL;
DEFINE FIELD stream ON rendition TYPE string;
DEFINE FIELD name ON rendition TYPE string;
DEFINE FIELD kind ON rendition TYPE string ASSERT $value IN ['video', 'audio'];
DEFINE FIELD codecs ON rendition TYPE string;
DEFINE FIELD width ON rendition TYPE option<int>;
DEFINE FIELD height ON rendition TYPE option<int>;
DEFINE FIELD fps_num ON rendition TYPE option<int>;
DEFINE FIELD fps_den ON rendition TYPE option<int>;
DEFINE INDEX rendition_stream ON rendition FIELDS stream;

-- One recording per stream (the record key is the stream id), rebuilt each
-- time the stream ends.
DEFINE TABLE recording SCHEMAFULL;
DEFINE FIELD stream ON recording TYPE record<stream>;
DEFINE FIELD duration_ms ON recording TYPE int;
DEFINE FIELD renditions ON recording TYPE array<object>;
DEFINE FIELD renditions[*].name ON recording TYPE string;
DEFINE FIELD renditions[*].segments ON recording TYPE int;
DEFINE FIELD renditions[*].bytes ON recording TYPE int;
DEFINE FIELD store_bytes ON recording TYPE int;
DEFINE FIELD discontinuities ON recording TYPE int DEFAULT 0;
DEFINE FIELD mp4_state ON recording TYPE string ASSERT $value IN ['pending', 'building', 'ready', 'failed'];
DEFINE FIELD mp4_progress ON recording TYPE int DEFAULT 0;
DEFINE FIELD mp4_error ON recording TYPE option<string>;
DEFINE FIELD mp4_bytes ON recording TYPE option<int>;
DEFINE FIELD mp4_duration_ms ON recording TYPE option<int>;
DEFINE FIELD thumbnail ON recording TYPE bool DEFAULT false;
DEFINE FIELD created_at ON recording TYPE datetime DEFAULT time::now();
DEFINE FIELD updated_at ON recording TYPE datetime DEFAULT time::now();
",
        transactional: true,
    },
    Migration {
        version: 5,
        name: "analytics: viewer sessions and per-minute rollups",
        sql: "
-- Raw viewer sessions (never the IP), deleted after the retention period.
DEFINE TABLE analytics_session SCHEMAFULL;
DEFINE FIELD stream ON analytics_session TYPE record<stream>;
DEFINE FIELD viewer ON analytics_session TYPE string;
DEFINE FIELD user ON analytics_session TYPE option<record<user>>;
DEFINE FIELD country ON analytics_session TYPE string;
DEFINE FIELD region ON analytics_session TYPE option<string>;
DEFINE FIELD city ON analytics_session TYPE option<string>;
DEFINE FIELD ua ON analytics_session TYPE string;
DEFINE FIELD joined_ms ON analytics_session TYPE int;
DEFINE FIELD left_ms ON analytics_session TYPE int;
DEFINE FIELD watch_ms ON analytics_session TYPE int;
DEFINE INDEX analytics_session_stream ON analytics_session FIELDS stream;
DEFINE INDEX analytics_session_left ON analytics_session FIELDS left_ms;

-- One row per stream and minute (or a few, when a node restarted within
-- the minute: readers add them up). `detail` is JSON: places, histograms,
-- renditions, the watch-time distribution.
DEFINE TABLE analytics_minute SCHEMAFULL;
DEFINE FIELD stream ON analytics_minute TYPE record<stream>;
DEFINE FIELD minute ON analytics_minute TYPE int;
DEFINE FIELD peak ON analytics_minute TYPE int;
DEFINE FIELD viewer_sum ON analytics_minute TYPE int;
DEFINE FIELD samples ON analytics_minute TYPE int;
DEFINE FIELD new_viewers ON analytics_minute TYPE int;
DEFINE FIELD watch_ms ON analytics_minute TYPE int;
DEFINE FIELD stalls ON analytics_minute TYPE int;
DEFINE FIELD stall_ms ON analytics_minute TYPE int;
DEFINE FIELD detail ON analytics_minute TYPE string;
DEFINE INDEX analytics_minute_stream_minute ON analytics_minute FIELDS stream, minute;
",
        transactional: true,
    },
    Migration {
        version: 6,
        name: "captions: transcripts and summaries",
        sql: "
-- One row per transcribed window. Times are milliseconds on the stream's
-- media timeline (0 = its first sample; the VOD's ?t= position), and
-- `program_ms` is the Unix time it was spoken (EXT-X-PROGRAM-DATE-TIME).
DEFINE TABLE transcript SCHEMAFULL;
DEFINE FIELD stream ON transcript TYPE record<stream>;
DEFINE FIELD start_ms ON transcript TYPE int;
DEFINE FIELD end_ms ON transcript TYPE int;
DEFINE FIELD program_ms ON transcript TYPE option<int>;
DEFINE FIELD text ON transcript TYPE string;
DEFINE FIELD created_at ON transcript TYPE datetime DEFAULT time::now();
DEFINE INDEX transcript_stream_start ON transcript FIELDS stream, start_ms;

-- The latest summary of a stream's transcript (record key: the stream id).
-- `kind` is `llm` (made by `model`) or `extractive` (the built-in fallback).
DEFINE TABLE summary SCHEMAFULL;
DEFINE FIELD stream ON summary TYPE record<stream>;
DEFINE FIELD kind ON summary TYPE string ASSERT $value IN ['llm', 'extractive'];
DEFINE FIELD model ON summary TYPE option<string>;
DEFINE FIELD text ON summary TYPE string;
DEFINE FIELD created_at ON summary TYPE datetime DEFAULT time::now();
",
        transactional: true,
    },
    Migration {
        version: 7,
        name: "full-text search over transcripts, titles and descriptions",
        sql: "
-- BM25 with highlights. Not in a transaction: SurrealDB builds a full-text
-- index over existing rows only outside one.
DEFINE ANALYZER IF NOT EXISTS onair_text TOKENIZERS blank, class, punct FILTERS lowercase, ascii, snowball(english);
DEFINE INDEX IF NOT EXISTS transcript_text ON transcript FIELDS text FULLTEXT ANALYZER onair_text BM25 HIGHLIGHTS;
DEFINE INDEX IF NOT EXISTS stream_title_text ON stream FIELDS title FULLTEXT ANALYZER onair_text BM25 HIGHLIGHTS;
DEFINE INDEX IF NOT EXISTS stream_description_text ON stream FIELDS description FULLTEXT ANALYZER onair_text BM25 HIGHLIGHTS;
",
        transactional: false,
    },
    Migration {
        version: 8,
        name: "chapters of a stream's recording",
        sql: "
-- A stream's chapters (record key: the stream id): `kind` is `llm` (made by
-- `model`), `builtin` (topic segmentation) or `edited` (by the owner);
-- `items` in order of `start_ms` (ms on the media timeline), the first at 0.
DEFINE TABLE chapters SCHEMAFULL;
DEFINE FIELD stream ON chapters TYPE record<stream>;
DEFINE FIELD kind ON chapters TYPE string ASSERT $value IN ['llm', 'builtin', 'edited'];
DEFINE FIELD model ON chapters TYPE option<string>;
DEFINE FIELD items ON chapters TYPE array<object>;
DEFINE FIELD items.*.start_ms ON chapters TYPE int;
DEFINE FIELD items.*.title ON chapters TYPE string;
DEFINE FIELD updated_at ON chapters TYPE datetime DEFAULT time::now();
",
        transactional: true,
    },
];

/// The lease as a waiting node reads it.
#[derive(Debug, Clone, PartialEq, SurrealValue)]
struct LockRow {
    holder: String,
    expired: bool,
}

/// Versions recorded in the `migration` table, sorted (none on a fresh
/// database, where the table does not exist yet).
async fn recorded(db: &Surreal<Any>) -> Result<Vec<i64>, DbError> {
    if !table_exists(db, "migration").await? {
        return Ok(Vec::new());
    }
    let mut done: Vec<i64> = db
        .query("SELECT VALUE version FROM migration")
        .await?
        .check()?
        .take(0)?;
    done.sort_unstable();
    Ok(done)
}

/// Whether `table` is defined (selecting from an undefined table is an error).
async fn table_exists(db: &Surreal<Any>, table: &str) -> Result<bool, DbError> {
    let tables: Vec<String> = db
        .query("RETURN object::keys((INFO FOR DB).tables)")
        .await?
        .check()?
        .take(0)?;
    Ok(tables.iter().any(|t| t == table))
}

fn pending(all: &[Migration], done: &[i64]) -> bool {
    all.iter().any(|m| done.binary_search(&m.version).is_err())
}

/// This process's name for the lease: `who`, the pid and a counter (tests
/// start several nodes in one process).
fn holder_name(who: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{who} (pid {}, #{n})", std::process::id())
}

/// Applies the migrations in `all` that the database has not seen yet, under
/// the migration lease (see the module docs); `who` names this node in the
/// lease and the logs.
pub async fn apply(db: &Surreal<Any>, all: &[Migration], who: &str) -> Result<Report, DbError> {
    apply_waiting(db, all, who, LOCK_WAIT).await
}

/// [`apply`], waiting at most `wait` for another node's lease.
async fn apply_waiting(
    db: &Surreal<Any>,
    all: &[Migration],
    who: &str,
    wait: Duration,
) -> Result<Report, DbError> {
    let current = all.iter().map(|m| m.version).max().unwrap_or(0);
    // Up to date (every restart but the first after an upgrade): no lease.
    if !pending(all, &recorded(db).await?) {
        return Ok(Report {
            applied: Vec::new(),
            current,
        });
    }
    let holder = holder_name(who);
    let started = Instant::now();
    let mut failed_claims = 0u32;
    let mut announced: Option<String> = None;
    loop {
        let claim = db
            .query(format!(
                "CREATE migration_lock:schema SET holder = $holder, expires_at = time::now() + {LOCK_TTL_QL};"
            ))
            .bind(("holder", holder.clone()))
            .await
            .and_then(|r| r.check());
        match claim {
            Ok(_) => {
                tracing::info!(holder = %holder, "claimed the schema migration lock");
                let result = apply_holding(db, all, &holder).await;
                let release = db
                    .query("DELETE migration_lock:schema WHERE holder = $holder")
                    .bind(("holder", holder.clone()))
                    .await
                    .and_then(|r| r.check());
                if let Err(e) = release {
                    // It expires after LOCK_TTL anyway.
                    tracing::warn!(holder = %holder, error = %e, "could not release the schema migration lock");
                }
                return result.map(|applied| Report { applied, current });
            }
            Err(claim_error) => {
                let lock: Vec<LockRow> = if table_exists(db, "migration_lock").await? {
                    db.query(
                        "SELECT holder, expires_at < time::now() AS expired FROM migration_lock:schema",
                    )
                    .await?
                    .check()?
                    .take(0)?
                } else {
                    Vec::new()
                };
                match lock.into_iter().next() {
                    None => {
                        // Not a lost race: released in between, or a real error.
                        failed_claims += 1;
                        if failed_claims >= CLAIM_ATTEMPTS {
                            return Err(DbError::Query(claim_error));
                        }
                        tracing::debug!(error = %claim_error, "claiming the schema migration lock failed, retrying");
                    }
                    Some(LockRow {
                        holder: other,
                        expired: true,
                    }) => {
                        tracing::warn!(
                            holder = %holder,
                            expired_holder = %other,
                            "the schema migration lock expired (its holder stopped?): taking it over"
                        );
                        // Another node may take it over at the same moment:
                        // a conflict here is that race, and the claim decides.
                        let takeover = db
                            .query("DELETE migration_lock:schema WHERE expires_at < time::now()")
                            .await
                            .and_then(|r| r.check());
                        if let Err(e) = takeover {
                            tracing::debug!(error = %e, "deleting the expired schema migration lock failed");
                        }
                        continue;
                    }
                    Some(LockRow { holder: other, .. }) => {
                        if announced.as_deref() != Some(other.as_str()) {
                            tracing::info!(
                                holder = %holder,
                                migrating = %other,
                                "another node is migrating the schema: waiting for it"
                            );
                            announced = Some(other.clone());
                        }
                        if started.elapsed() >= wait {
                            return Err(DbError::MigrationLock {
                                holder: other,
                                waited_secs: wait.as_secs(),
                            });
                        }
                    }
                }
            }
        }
        tokio::time::sleep(LOCK_POLL).await;
        if !pending(all, &recorded(db).await?) {
            tracing::info!(holder = %holder, "the schema was migrated by another node");
            return Ok(Report {
                applied: Vec::new(),
                current,
            });
        }
    }
}

/// Applies what is pending while holding the lease, renewing it every
/// [`LOCK_RENEW`] until done.
async fn apply_holding(
    db: &Surreal<Any>,
    all: &[Migration],
    holder: &str,
) -> Result<Vec<i64>, DbError> {
    let work = apply_pending(db, all);
    tokio::pin!(work);
    let mut renew = tokio::time::interval(LOCK_RENEW);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await; // the first tick is immediate; the lease is fresh
    loop {
        tokio::select! {
            result = &mut work => return result,
            _ = renew.tick() => {
                let renewed: Result<Vec<String>, surrealdb::Error> = async {
                    db.query(format!(
                        "UPDATE migration_lock:schema SET expires_at = time::now() + {LOCK_TTL_QL} WHERE holder = $holder RETURN VALUE holder"
                    ))
                    .bind(("holder", holder.to_string()))
                    .await?
                    .check()?
                    .take(0)
                }
                .await;
                match renewed {
                    Ok(rows) if rows.is_empty() => tracing::error!(
                        holder = %holder,
                        "lost the schema migration lock (it expired and another node took it over)"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(holder = %holder, error = %e, "could not renew the schema migration lock"),
                }
            }
        }
    }
}

/// The migrations themselves: the bookkeeping table, then each one not recorded yet.
async fn apply_pending(db: &Surreal<Any>, all: &[Migration]) -> Result<Vec<i64>, DbError> {
    db.query(BOOKKEEPING).await?.check()?;
    // Read again under the lease: the previous holder may have finished.
    let done = recorded(db).await?;
    let mut applied = Vec::new();
    for m in all {
        if done.binary_search(&m.version).is_ok() {
            continue;
        }
        let migration_error = |source| DbError::Migration {
            version: m.version,
            name: m.name,
            source,
        };
        let sql = if m.transactional {
            format!(
                "BEGIN TRANSACTION;\n{}\nCREATE migration SET version = $version, name = $name;\nCOMMIT TRANSACTION;",
                m.sql
            )
        } else {
            // Every statement first; the bookkeeping row only once they all succeeded.
            db.query(m.sql)
                .await
                .and_then(|r| r.check())
                .map_err(migration_error)?;
            "CREATE migration SET version = $version, name = $name;".to_string()
        };
        db.query(sql)
            .bind(("version", m.version))
            .bind(("name", m.name))
            .await
            .and_then(|r| r.check())
            .map_err(migration_error)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
        applied.push(m.version);
    }
    Ok(applied)
}

#[cfg(test)]
#[path = "migrations_tests.rs"]
mod tests;
