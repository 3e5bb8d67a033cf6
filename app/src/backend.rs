//! What the server provides to server functions (server build only).
//!
//! The server crate implements [`Backend`] over its database and passes an
//! `Arc<dyn Backend>` into the Leptos context, so this crate stays free of
//! database code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::AppError;
use crate::streams::StreamCard;

/// A boxed future, so [`Backend`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Data access for server functions.
pub trait Backend: Send + Sync + 'static {
    /// Streams that are live now, most recently started first.
    fn live_streams(&self) -> BoxFuture<'_, Result<Vec<StreamCard>, AppError>>;
}

/// Fetches the backend from the Leptos context inside a server function.
pub fn backend() -> Result<Arc<dyn Backend>, AppError> {
    leptos::prelude::use_context::<Arc<dyn Backend>>()
        .ok_or_else(|| AppError::Unavailable("the server is not ready yet".into()))
}
