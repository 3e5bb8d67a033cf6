//! The reason text of a close frame, shared by both sockets: a JSON
//! [`CloseReason`] that fits the 123 bytes a close frame allows.

use serde::{Deserialize, Serialize};

/// The JSON body of a close frame's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseReason {
    /// Stable machine-readable code, such as `too_large`.
    pub code: String,
    /// A message for the broadcaster.
    pub message: String,
}

impl CloseReason {
    /// The JSON text of a close frame's reason, with the message shortened
    /// so the whole fits the 123 bytes a close frame allows.
    pub fn frame_text(code: &str, message: &str) -> String {
        let mut body = CloseReason {
            code: code.to_string(),
            message: message.to_string(),
        };
        let mut json = serde_json::to_string(&body).unwrap_or_default();
        while json.len() > 123 && !body.message.is_empty() {
            let keep = body.message.chars().count().saturating_sub(5);
            body.message = body.message.chars().take(keep).collect();
            json = serde_json::to_string(&body).unwrap_or_default();
        }
        json
    }
}
