//! Browser-only helpers (the `hydrate` build), stated once.

/// Wall-clock Unix ms (`Date.now()`).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Milliseconds on the page's monotonic clock (`performance.now()`), for
/// spans the wall clock could jump across; 0 without a `performance`.
pub fn monotonic_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0)
}
