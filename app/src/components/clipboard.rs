//! Copying text to the clipboard from a button (the Encoder panel, Share).

use leptos::prelude::*;

/// Copies `text` to the clipboard and sets `done` to `what` (in the
/// browser; nothing on the server).
pub fn copy(text: String, done: RwSignal<Option<&'static str>>, what: &'static str) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(&text);
        done.set(Some(what));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (text, done, what);
}
