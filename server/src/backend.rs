//! The server's implementation of [`app::backend::Backend`]: what server functions
//! may ask of the database.

use app::backend::{Backend, BoxFuture};
use app::error::AppError;
use app::streams::StreamCard;

use crate::db::Database;

/// Server functions' view of the database.
#[derive(Debug, Clone)]
pub struct DbBackend {
    db: Database,
}

impl DbBackend {
    /// Wraps a database handle.
    pub fn new(db: Database) -> Self {
        DbBackend { db }
    }
}

fn unavailable(err: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %err, "database error in a server function");
    AppError::Unavailable("the database is not answering right now; try again shortly".into())
}

impl Backend for DbBackend {
    fn live_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>> {
        Box::pin(async move {
            let rows = self.db.live_streams(50).await.map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|r| StreamCard {
                    id: r.id,
                    title: r.title,
                    owner: r.owner,
                    started_at: r.started_at,
                })
                .collect())
        })
    }
}
