//! The error type server functions return, and that survives the trip to the browser.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// An error shown to the user. It carries a machine-readable code and a message
/// that is safe to display; internals are logged on the server, never sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The server could not complete the request; the message says what to try.
    #[error("{0}")]
    Unavailable(String),
    /// The request failed on the way (network, encoding) before a server answer.
    #[error("request failed: {0}")]
    Transport(String),
    /// The server refused the request, as the JSON API would: `code` is the
    /// API's error code (`unauthenticated`, `forbidden`, `validation_failed`,
    /// `too_many_attempts`, ... see docs/api.md) and `status` its HTTP status.
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The JSON API error code.
        code: String,
        /// A message safe to show.
        message: String,
    },
}

impl AppError {
    /// The stable code also used in JSON API error bodies.
    pub fn code(&self) -> &str {
        match self {
            AppError::Unavailable(_) => "unavailable",
            AppError::Transport(_) => "transport",
            AppError::Refused { code, .. } => code,
        }
    }

    /// The HTTP status that goes with this error.
    pub fn status_code(&self) -> u16 {
        match self {
            AppError::Unavailable(_) => 503,
            AppError::Transport(_) => 502,
            AppError::Refused { status, .. } => *status,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// Arguments the server could not read (malformed or missing) are the
    /// client's fault: a 400 `bad_request`, as the JSON API answers a body
    /// it cannot read. Everything else failed on the way.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => {
                let err = AppError::Refused {
                    status: 400,
                    code: "bad_request".into(),
                    message: value.to_string(),
                };
                // The arguments are read before the function runs, so the
                // status is set here; the answer would be a 500 otherwise.
                #[cfg(feature = "ssr")]
                if let Some(res) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                    res.set_status(http::StatusCode::BAD_REQUEST);
                }
                err
            }
            other => AppError::Transport(other.to_string()),
        }
    }
}
