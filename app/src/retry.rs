//! Reconnect delays shared by the browser's sockets (the studio's ingest
//! socket and the events socket): exponential backoff with jitter, so many
//! clients that lost the server at the same moment do not come back in step.

/// The delay before reconnect attempt `attempt` (1 for the first retry), in
/// milliseconds: `first_ms` doubled per attempt, capped at `cap_ms`, then
/// scaled by a random factor between 0.5 and 1. `random` is in `[0, 1)`
/// (`Math.random()` in the browser); values outside are clamped.
pub fn backoff_ms(attempt: u32, first_ms: f64, cap_ms: f64, random: f64) -> f64 {
    let exponent = attempt.clamp(1, 11) as i32 - 1;
    let base = (first_ms * 2f64.powi(exponent)).min(cap_ms);
    base * (0.5 + random.clamp(0.0, 1.0) * 0.5)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn delays_double_up_to_the_cap_and_keep_some_jitter() {
        assert_eq!(backoff_ms(1, 500.0, 10_000.0, 1.0), 500.0);
        assert_eq!(backoff_ms(2, 500.0, 10_000.0, 1.0), 1000.0);
        assert_eq!(backoff_ms(3, 500.0, 10_000.0, 1.0), 2000.0);
        assert_eq!(backoff_ms(9, 500.0, 10_000.0, 1.0), 10_000.0);
        assert_eq!(backoff_ms(u32::MAX, 500.0, 10_000.0, 1.0), 10_000.0);
        // Jitter: between half and all of the base.
        assert_eq!(backoff_ms(3, 500.0, 10_000.0, 0.0), 1000.0);
        assert_eq!(backoff_ms(3, 500.0, 10_000.0, 0.5), 1500.0);
        // Attempt 0 is treated as the first; odd randoms are clamped.
        assert_eq!(backoff_ms(0, 500.0, 10_000.0, 7.0), 500.0);
        assert_eq!(backoff_ms(1, 500.0, 10_000.0, -1.0), 250.0);
    }
}
