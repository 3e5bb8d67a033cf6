//! The browser entry point: hydrates the server-rendered Onair app.

#![allow(clippy::missing_safety_doc)]

/// Called by the wasm-bindgen glue when the module loads.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
