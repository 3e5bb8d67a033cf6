//! Wall-clock time, stated once: Unix milliseconds for program dates, state
//! changes and anything else that records when something happened. Media
//! time never comes from here (it is integer ticks in a stated timescale,
//! see `packager::time`).

/// The current time in Unix milliseconds (0 before 1970, saturating far in
/// the future).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
