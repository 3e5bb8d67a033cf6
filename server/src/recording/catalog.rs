//! The catalog: what a live pipeline archived, written to the database as it
//! happens, so a recording can be built later from the rows and the store's
//! listing, also after a crash. The pipeline (a blocking thread) hands entries
//! to [`Catalog::record`], which never blocks; one task writes them in batches,
//! retrying while the database does not answer.
//!
//! Metrics: `onair_catalog_rows_total{result}` (`ok`, `retry`, `dropped`).

use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::recordings::{RenditionRow, SegmentRow};
use crate::db::Database;
use crate::outstanding::Outstanding;

/// Rows written per query at most.
const BATCH: usize = 64;
/// Attempts per batch before its rows are dropped (and counted).
const ATTEMPTS: u32 = 8;

/// Something archived, as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEntry {
    /// A rendition started (or its codec parameters changed).
    Rendition(RenditionRow),
    /// A segment was archived.
    Segment(SegmentRow),
}

/// A handle to record entries; cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    tx: mpsc::UnboundedSender<CatalogEntry>,
    pending: Outstanding,
}

impl Catalog {
    /// Starts the writer task.
    pub fn start(db: Database) -> Catalog {
        let (tx, rx) = mpsc::unbounded_channel();
        let pending = Outstanding::new(0);
        tokio::spawn(write_loop(db, rx, pending.clone()));
        Catalog { tx, pending }
    }

    /// Queues an entry. Never blocks.
    pub fn record(&self, entry: CatalogEntry) {
        self.pending.add();
        if self.tx.send(entry).is_err() {
            self.pending.done(1);
            metrics::counter!("onair_catalog_rows_total", "result" => "dropped").increment(1);
            tracing::error!("the catalog writer has stopped; an entry was dropped");
        }
    }

    /// Entries queued and not yet written.
    pub fn pending(&self) -> u64 {
        self.pending.get()
    }

    /// Waits until every queued entry is written (or `timeout` passes); true if so.
    pub async fn flushed(&self, timeout: Duration) -> bool {
        self.pending.drained(timeout).await
    }
}

async fn write_loop(
    db: Database,
    mut rx: mpsc::UnboundedReceiver<CatalogEntry>,
    pending: Outstanding,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        write_batch(&db, std::mem::take(&mut batch)).await;
        pending.done(n);
    }
}

async fn write_batch(db: &Database, batch: Vec<CatalogEntry>) {
    let mut segments = Vec::new();
    let mut renditions = Vec::new();
    for e in batch {
        match e {
            CatalogEntry::Segment(s) => segments.push(s),
            CatalogEntry::Rendition(r) => renditions.push(r),
        }
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        let mut result = Ok(());
        for r in &renditions {
            result = result.and(db.upsert_rendition(r).await);
        }
        if result.is_ok() {
            result = db.insert_segments(&segments).await;
        }
        match result {
            Ok(()) => {
                metrics::counter!("onair_catalog_rows_total", "result" => "ok")
                    .increment((segments.len() + renditions.len()) as u64);
                return;
            }
            Err(e) => {
                metrics::counter!("onair_catalog_rows_total", "result" => "retry").increment(1);
                tracing::warn!(attempt, error = %e, "could not record archived segments");
                if attempt < ATTEMPTS {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    metrics::counter!("onair_catalog_rows_total", "result" => "dropped")
        .increment((segments.len() + renditions.len()) as u64);
    tracing::error!(
        segments = segments.len(),
        "the database did not take the archived segments' rows; their recording may miss them"
    );
}
